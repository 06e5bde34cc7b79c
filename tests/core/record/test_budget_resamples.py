"""The probe's resample finding: the local platform writes a schema's missed answer again (up to
``SCHEMA_RESAMPLES`` more times), each answer billed, but only one was held: one call under
``budget(tokens=200)`` ended at 312/200. Against the platform (its llama engine over a fake
llama-server whose every answer misses the schema), a call now holds all its answers first: the
budget is never passed, and a call that could pass it is refused before it is sent."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qfnb
from qfnb._core.http.recording.recorded import schema_answers
from qfnb._core.record.budget import BudgetExceeded, budget
from qfnb.local.engines.llama.link import transport
from qfnb.protocol.limits import SCHEMA_RESAMPLES
from tests.fakes.local_platform import ServedPlatform, served_platform

sys.path.insert(0, str(Path(__file__).parents[2] / "local"))
from pattern_doubles import HostileLlama, HostileRegistry, hostile_schema

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py

CAP = 40
FORMAT = {"type": "json_schema", "json_schema": {"name": "probe", "schema": hostile_schema(r"^(\d+)+$")}}


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServedPlatform, HostileLlama]]:
    fake = HostileLlama(8)
    registry = HostileRegistry(fake)
    monkeypatch.setattr(transport, "client", lambda: registry.client)
    with served_platform(tmp_path / "platform", registry=registry) as served:
        served.as_default_backend(monkeypatch)
        yield served, fake


def _ask(**fields: Any) -> Any:
    return qfnb.ChatCompletion(version=2).do(model="tiny-chat", messages=[{"role": "user", "content": r"^(\d+)+$"}],
                                            max_tokens=CAP, **fields)


def test_a_schema_call_holds_every_answer_the_platform_may_write(platform: Any) -> None:
    _, fake = platform
    spend = budget(tokens=10_000)
    _ask(response_format=FORMAT)
    assert fake.chats == 1 + SCHEMA_RESAMPLES  # every answer missed: written again twice
    per_answer = 12 + CAP
    assert spend.spent_tokens == (1 + SCHEMA_RESAMPLES) * per_answer and spend.reserved_tokens == 0
    fake.chats = 0
    spend = budget(tokens=2 * per_answer + 10)  # one answer's worst case fits, three do not
    with pytest.raises(BudgetExceeded, match="may use up to"):
        _ask(response_format=FORMAT)
    assert fake.chats == 0 and spend.spent_tokens == 0  # refused before it was sent (before: 156 of 114 spent)
    _ask()  # without a schema: one answer, held as one
    assert fake.chats == 1 and spend.spent_tokens == per_answer <= spend.tokens


def test_which_calls_the_platform_may_write_again() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert schema_answers({"response_format": FORMAT}) == 1 + SCHEMA_RESAMPLES
    assert schema_answers({"text": {"format": {"type": "json_schema", "schema": {}}}}) == 1 + SCHEMA_RESAMPLES
    assert schema_answers({"output_config": {"format": {"type": "json_schema"}}}) == 1 + SCHEMA_RESAMPLES
    assert schema_answers({"tools": [tool], "tool_choice": "required"}) == 1 + SCHEMA_RESAMPLES
    assert schema_answers({"tools": [{**tool, "function": {**tool["function"], "strict": True}}]}) == 3
    assert schema_answers({"tools": [tool], "tool_choice": {"type": "tool", "name": "f"}}) == 1 + SCHEMA_RESAMPLES
    assert schema_answers({"tools": [tool]}) == schema_answers({"tools": [tool], "tool_choice": {"type": "auto"}}) == 1
    assert schema_answers({"response_format": {"type": "json_object"}}) == 1

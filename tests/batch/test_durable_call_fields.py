"""``batch_do(..., durable=True)`` takes the same call fields as a live call: a v1 name such as
``max_output_tokens`` (or ``system=``) reaches each row in the chat shape a batch job reads, not as a
field the platform refuses on every row."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb._core.record import cache as cache_mod
from qfnb._core.record import ledger as ledger_mod
from qfnb.resources import ChatCompletion
from qfnb.resources.inference.shapes.v2 import chat_row
from tests.fakes.local_platform import served_platform


def test_a_durable_batch_caps_each_row_with_the_v1_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "record"))
    cache_mod._default.clear()
    ledger_mod._default.clear()
    with served_platform(tmp_path / "data") as platform:
        platform.set_env(monkeypatch)
        job = ChatCompletion(model="tiny-chat").batch_do([[{"role": "user", "content": f"row {i}"}] for i in range(3)],
                                                         durable=True, max_output_tokens=4, system="be brief")
        state = job.wait(interval=0.05)
        assert (state.status, state.done, state.failed) == ("Done", 3, 0), state
        answers = job.results()
    assert all(a["usage"]["completion_tokens"] <= 4 for a in answers), answers


def test_a_row_is_the_chat_request_of_the_call_fields() -> None:
    row = chat_row({"messages": [{"role": "user", "content": "hi"}], "max_output_tokens": 4, "system": "s",
                    "user_id": "u1", "retry_count": 3, "temperature": 0.2, "stream": True})
    assert row == {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
                   "max_completion_tokens": 4, "user": "u1", "temperature": 0.2}

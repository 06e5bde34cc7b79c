"""The v2 chat route (``ChatCompletion(version=2)``) is recorded like v1 inference: cached when the
cache is on, replayed as the same chunks, in the ledger, with provenance."""

from __future__ import annotations

from typing import Any

import pytest

import qfnb
from qfnb._core.record import ledger as ledger_mod

MSG = [{"role": "user", "content": "hi"}]


pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py


def _v2_calls(fake: Any) -> int:
    return len([r for r in fake.calls("/v2/chat") if r.method == "POST"])


def test_v2_chat_answers_from_the_cache_when_it_is_on(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(version=2, config=make_config("iam", cache=True))
    first = chat.do(messages=MSG, temperature=0.3)
    again = chat.do(messages=MSG, temperature=0.3)
    assert _v2_calls(fake) == 1
    assert again.body == first.body and again.provenance["cache"]["hit"] is True
    assert first.provenance["api"] == "v2/chat" and first.provenance["params"]["temperature"] == 0.3
    chat.do(messages=MSG, temperature=0.4)
    assert _v2_calls(fake) == 2
    streamed = list(chat.do(messages=MSG, stream=True))
    replayed = list(chat.do(messages=MSG, stream=True))
    assert _v2_calls(fake) == 3
    assert [c.body for c in replayed] == [c.body for c in streamed] and replayed[-1].provenance["cache"]["hit"]
    rows = ledger_mod.default_ledger().rows()
    assert [r.cache_hit for r in rows] == [False, True, False, False, True]
    assert {r.api for r in rows} == {"v2/chat"}
    assert rows[0].total_tokens == first.body["usage"]["total_tokens"] > 0


def test_v2_chat_is_not_cached_by_default(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(version=2, config=make_config("iam"))
    chat.do(messages=MSG)
    chat.do(messages=MSG)
    assert _v2_calls(fake) == 2

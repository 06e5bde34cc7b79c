"""The local platform's own routes as data: code completion's body (a field out of range refused by name, no
unknown field) and the one sentence both sides say of a keyed call's progress."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qfnb.protocol.wires.local.call_progress import FIELDS, describe
from qfnb.protocol.wires.local.completion import MAX_COMPLETION_TOKENS, MAX_CONTEXT_CHARS, CompleteRequest


def test_a_completion_body_takes_its_defaults() -> None:
    req = CompleteRequest.model_validate({"prefix": "def f(", "extra": [{"filename": "cell1", "text": "x = 1"}]})
    assert (req.suffix, req.max_tokens, req.stop, req.stream, req.extra[0].filename) == ("", 64, [], False, "cell1")


@pytest.mark.parametrize(("body", "field"), [
    ({"prefix": "x", "max_tokens": MAX_COMPLETION_TOKENS + 1}, "max_tokens"),
    ({"prefix": "x", "max_tokens": 0}, "max_tokens"),
    ({"prefix": "x" * (MAX_CONTEXT_CHARS + 1)}, "prefix"),
    ({"prefix": "x", "stop": ["a"] * 5}, "stop"),
    ({"prefix": "x", "extra": [{"filename": "f", "text": "t", "language": "py"}]}, "extra.0.language"),
    ({"prefix": "x", "temperature": 0.2}, "temperature"),
    ({"suffix": "x"}, "prefix"),
])
def test_a_completion_body_out_of_range_is_refused_by_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CompleteRequest.model_validate(body)
    assert [".".join(map(str, e["loc"])) for e in caught.value.errors()] == [field]


def test_a_keyed_calls_progress_is_said_in_one_sentence() -> None:
    assert FIELDS[0] == "phase"
    assert describe({"phase": "generating", "generatingSeconds": 95, "tokens": 212, "queuedSeconds": 40}) == \
        "generating: 212 tokens in 95 s after 40 s queued"
    assert describe({"phase": "generating", "generatingSeconds": 3.2, "tokens": 0}) == \
        "generating: reading its prompt for 3 s"
    assert describe({"phase": "queued", "queuedSeconds": 12, "elapsedSeconds": 14}) == "queued for 12 s of 14 s"
    assert describe({"phase": "done", "elapsedSeconds": 9, "tokens": 30, "loadingSeconds": 5}) == \
        "done: 30 tokens in 9 s after 5 s loading its model"
    assert describe({"elapsedSeconds": "soon"}) == "unknown 0 s ago, not yet at an engine"

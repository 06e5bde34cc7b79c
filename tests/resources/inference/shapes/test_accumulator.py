"""``ChatAccumulator``: one answer from stream chunks and auto_concat_truncate rounds (pure)."""

from __future__ import annotations

from qfnb.resources.inference.shapes.accumulator import ChatAccumulator


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def test_within_a_round_the_latest_usage_wins_and_text_adds_up() -> None:
    acc = ChatAccumulator()
    assert acc.add_body({"result": "你好", "usage": _usage(3, 1)}) == "你好"
    acc.add_body({"result": "，世界", "usage": _usage(3, 3), "is_truncated": False})
    assert acc.text == "你好，世界" and acc.usage == _usage(3, 3) and not acc.truncated and acc.chunks == 2


def test_rounds_keep_their_text_and_add_their_usage() -> None:
    acc = ChatAccumulator()
    acc.add_body({"result": "part one ", "usage": _usage(5, 2)})
    acc.add_body({"result": "cut", "usage": _usage(5, 4), "is_truncated": True})
    assert acc.truncated
    acc.end_round()
    acc.add_body({"result": " and the rest", "usage": _usage(9, 3), "is_truncated": False})
    assert acc.rounds == ["part one cut"] and acc.text == "part one cut and the rest"
    assert acc.usage == _usage(14, 7) and not acc.truncated
    acc.end_round()
    assert acc.rounds == ["part one cut", " and the rest"] and acc.usage == _usage(14, 7)


def test_deltas_without_usage_or_text() -> None:
    acc = ChatAccumulator()
    assert acc.add() == "" and acc.usage == {} and acc.text == ""
    acc.add("a", {"total_tokens": 2, "model": "m"})
    acc.add("b")
    assert acc.text == "ab" and acc.usage == {"total_tokens": 2, "model": "m"}

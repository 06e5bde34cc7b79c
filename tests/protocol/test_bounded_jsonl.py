"""The bounded JSONL reader every fine-tuning line is parsed through: a line past its length, a file past its
lines or bytes, a line nested too deep, a line cut short — each a :class:`LineProblem` naming the line and the
limit (never a ``RecursionError``), and a long line never held whole."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest

from qfnb.protocol import bounded_jsonl as bj


def _lines(data: bytes, **bounds: int) -> list[tuple[int, str]]:
    return list(bj.read_lines(io.BytesIO(data), **bounds))


def test_lines_come_without_their_end_of_line_and_a_bom_is_skipped() -> None:
    assert _lines(b'\xef\xbb\xbf{"a": 1}\r\n\n{"b": 2}') == [(1, '{"a": 1}'), (2, ""), (3, '{"b": 2}')]


@pytest.mark.parametrize("tail", [b"\n", b"\r\n", b""])
def test_a_line_at_the_limit_passes_and_one_byte_more_names_the_line_and_the_limit(tail: bytes) -> None:
    assert _lines(b"x" * 16 + b"\n" + b"y" * 16 + tail, max_line_bytes=16)[1] == (2, "y" * 16)
    with pytest.raises(bj.LineProblem, match="line 2: is longer than 16 bytes, the longest line accepted"):
        _lines(b"x" * 16 + b"\n" + b"y" * 17 + tail, max_line_bytes=16)


def test_a_file_past_its_lines_or_bytes_is_refused_at_the_line_that_passes() -> None:
    with pytest.raises(bj.LineProblem, match="line 4: the file holds more than 3 lines"):
        _lines(b"1\n2\n3\n4\n", max_lines=3)
    assert len(_lines(b"1\n2\n3\n", max_lines=3)) == 3
    with pytest.raises(bj.LineProblem, match="line 3: the file passes 10 bytes"):
        _lines(b"123\n456\n789\n", max_bytes=10)


def test_a_line_that_is_not_utf8_names_the_line() -> None:
    with pytest.raises(bj.LineProblem, match=r"line 2: is not UTF-8 text \(byte 2 of the line\)"):
        _lines(b'{}\n"a\xff"\n')


def test_a_long_line_is_never_held_whole(tmp_path: Path) -> None:
    """16 MiB in one line: refused having read at most the limit (the whole line was parsed before, at ~25x)."""
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"messages": "' + b"a" * (16 << 20) + b'"}\n')
    tracemalloc.start()
    try:
        with pytest.raises(bj.LineProblem, match="line 1: is longer than 1048576 bytes"):
            list(bj.file_lines(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * bj.MAX_LINE_BYTES, peak


def test_deep_nesting_is_a_line_problem_not_a_recursion_error() -> None:
    with pytest.raises(bj.LineProblem, match="line 7: nests deeper than 64 levels"):
        bj.loads_line("[" * 100_000 + "]" * 100_000, 7)
    with pytest.raises(bj.LineProblem, match="line 1: nests deeper than 64 levels"):
        bj.loads_line('{"a": ' * 65 + "1" + "}" * 65, 1)
    assert bj.loads_line('{"a": ' * 64 + "1" + "}" * 64, 1) is not None


def test_a_cut_line_reads_as_an_unterminated_string_with_its_column() -> None:
    cut = json.dumps({"messages": [{"role": "user", "content": "a long question"}]})[:50]
    with pytest.raises(bj.LineProblem) as caught:
        bj.loads_line(cut, 3)
    said = str(caught.value)
    assert said.startswith("line 3: is not valid JSON (Unterminated string starting at column ")
    assert "at at" not in said and "control character" not in said

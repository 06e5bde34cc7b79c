"""JSONL read under bounds (pure): every place a fine-tuning line is parsed reads through here.

A file is read line by line from its bytes, never more than one line (at most :data:`MAX_LINE_BYTES`)
held at once, and each line is parsed with its nesting bounded. A line past a bound, a line that is not
UTF-8 and a line that is not JSON each raise :class:`LineProblem`, naming the 1-based line and the limit.

Why the bounds: parsing a line builds its values in memory at many times its size (about 25x for short
values), and the JSON parser recurses once per level (100,000 levels raised ``RecursionError``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from qfnb.protocol.limits import MAX_UPLOAD_BYTES, MIB

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_LINES", "MAX_LINE_BYTES", "LineProblem", "describe_json_error",
           "file_lines", "loads_line", "read_lines"]

#: bytes of one line (its end of line aside): the longest fine-tuning example a local model trains on
#: (LIMITS' largest ``maxSeqLen``, 32,768 tokens) is about 130 KB of text
MAX_LINE_BYTES = 1 * MIB
#: levels of nesting in one line's JSON (a chat line with content parts nests 5)
MAX_DEPTH = 64
#: lines in one file, blank ones included
MAX_LINES = 200_000
#: bytes of one file: the upload cap
MAX_FILE_BYTES = MAX_UPLOAD_BYTES

_BOM = b"\xef\xbb\xbf"


class LineProblem(ValueError):
    """A line past a bound, not UTF-8 or not JSON; ``line`` is 1-based, the message names the limit."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line, self.message = line, message


def read_lines(raw: BinaryIO, *, max_line_bytes: int = MAX_LINE_BYTES, max_lines: int = MAX_LINES,
               max_bytes: int = MAX_FILE_BYTES) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line of ``raw`` (its ``\\n`` / ``\\r\\n`` cut off, a leading UTF-8
    byte-order mark skipped), one at a time; :class:`LineProblem` at the first line past a bound."""
    total = 0
    for no in range(1, max_lines + 2):
        data = raw.readline(max_line_bytes + 2)  # room for the line's "\r\n"
        if not data:
            return
        total += len(data)
        if total > max_bytes:
            raise LineProblem(no, f"the file passes {max_bytes} bytes, the most a fine-tuning file may hold")
        if no > max_lines:
            raise LineProblem(no, f"the file holds more than {max_lines} lines, the most a fine-tuning file may hold")
        body = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
        if len(body) > max_line_bytes or (len(data) > max_line_bytes and not data.endswith(b"\n")):
            raise LineProblem(no, f"is longer than {max_line_bytes} bytes, the longest line accepted")
        if no == 1 and body.startswith(_BOM):
            body = body[len(_BOM):]
        try:
            yield no, body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineProblem(no, f"is not UTF-8 text (byte {exc.start} of the line); fine-tuning files are "
                              "JSONL") from None


def file_lines(path: Path, **bounds: int) -> Iterator[tuple[int, str]]:
    """:func:`read_lines` of the file at ``path`` (opened and closed here)."""
    with open(path, "rb") as raw:
        yield from read_lines(raw, **bounds)


def describe_json_error(exc: json.JSONDecodeError) -> str:
    """The parser's words with the column: ``Unterminated string starting at column 7``."""
    said = exc.msg.rstrip()
    return f"{said} column {exc.colno}" if said.endswith(" at") else f"{said} at column {exc.colno}"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` levels (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


def loads_line(text: str, line: int, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of one line; :class:`LineProblem` naming ``line`` when it is not JSON or nests
    deeper than ``max_depth``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise LineProblem(line, f"nests deeper than {max_depth} levels, the most accepted") from None
    except json.JSONDecodeError as exc:
        raise LineProblem(line, f"is not valid JSON ({describe_json_error(exc)})") from None
    if isinstance(value, dict | list) and _deeper_than(value, max_depth):
        raise LineProblem(line, f"nests deeper than {max_depth} levels, the most accepted")
    return value

"""Server-sent events, as the platform uses them: pure encode/decode, no I/O.

v1 streams send ``data: {json}`` events with ``is_end`` on the last one and no
``[DONE]``; v2 streams end with ``data: [DONE]``. A non-``data`` line that is JSON
is an error body sent mid-stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qfnb.protocol.wires.codec import fastjson

DONE = "[DONE]"
_EOL = re.compile(r"\r\n|\r|\n")


def encode_event(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One SSE event, ready to write (JSON kept compact, non-ASCII kept as UTF-8; written in C where
    orjson is installed: a stream writes one a token)."""
    payload = data.encode() if isinstance(data, str) else fastjson.dumps(data)
    if event:
        return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
    return b"data: " + payload + b"\n\n"


class DataEvents:
    """Incremental splitter of an SSE byte stream into its events' ``data`` (bytes, the lines of a
    multi-line field joined by ``\\n``; events without data, comments and other fields skipped).

    What :class:`SSEDecoder` reads, without decoding text or building items: the engine link reads
    one event a token with it, and parses the JSON from bytes. Lines end in ``\\n``, ``\\r\\n`` or a
    bare ``\\r``, a ``\\r\\n`` may be split across chunks, and so may a multi-byte character (an event
    is only handed on whole)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take the next chunk; return the data of the events it completed."""
        buf = self._buffer + chunk
        held = b"\r" if buf.endswith(b"\r") else b""  # maybe the first half of a \r\n
        if b"\r" in buf:
            buf = buf[:len(buf) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = buf.split(b"\n\n")
        self._buffer = events.pop() + held
        data = ([line[6:] if line.startswith(b"data: ") else line[5:] for line in event.split(b"\n")
                 if line.startswith(b"data:")] for event in events)
        return [b"\n".join(lines) for lines in data if lines]

    def close(self) -> list[bytes]:
        """The data of a last event the stream ended without a blank line after."""
        rest, self._buffer = self._buffer, b""
        return self.feed(rest + b"\n\n") if rest.strip() else []


@dataclass
class SSEItem:
    """A decoded item: ``data`` (parsed JSON, or the raw string), or ``done``."""

    data: Any = None
    event: str | None = None
    done: bool = False
    #: True for a bare JSON line outside an SSE ``data:`` field (the platform's error shape)
    bare: bool = False


class SSEDecoder:
    """Incremental decoder: feed text chunks as they arrive, get complete items out.

    Lines end in ``\\n``, ``\\r\\n`` or a bare ``\\r`` (the SSE spec allows all three), and a
    ``\\r\\n`` may be split across chunks. Tolerates events split across chunks, multi-line
    ``data`` fields, and comment lines (``:``). Multi-byte characters must be decoded by the caller with an
    incremental decoder (httpx's ``aiter_text`` does that).
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._event: str | None = None

    def feed(self, text: str) -> list[SSEItem]:
        """Take the next chunk of text; return the items it completed (eagerly: a chunk is
        consumed whether or not the result is used)."""
        buf = self._buffer + text
        items: list[SSEItem] = []
        start = 0
        for match in _EOL.finditer(buf):
            if match.group() == "\r" and match.end() == len(buf):
                break  # maybe the first half of a \r\n split across chunks: wait for the next one
            items.extend(self._line(buf[start:match.start()]))
            start = match.end()
        self._buffer = buf[start:]
        return items

    def close(self) -> list[SSEItem]:
        """Flush what is left when the stream ends (a last event without a blank line)."""
        rest, self._buffer = self._buffer, ""
        items = [item for line in (_EOL.split(rest) if rest else ()) for item in self._line(line)]
        return [*items, *self._dispatch()]

    def _line(self, line: str) -> Iterator[SSEItem]:
        if not line:
            yield from self._dispatch()
        elif line.startswith((":", "id:", "retry:")):
            return
        elif line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            self._event = line[6:].strip()
        else:
            yield _parse(line, self._event, bare=True)

    def _dispatch(self) -> Iterator[SSEItem]:
        if not self._data:
            return
        payload, event = "\n".join(self._data), self._event
        self._data, self._event = [], None
        if payload.strip() == DONE:
            yield SSEItem(done=True, event=event)
        else:
            yield _parse(payload, event)


def _parse(payload: str, event: str | None, *, bare: bool = False) -> SSEItem:
    try:
        return SSEItem(data=json.loads(payload), event=event, bare=bare)
    except json.JSONDecodeError:
        return SSEItem(data=payload, event=event, bare=bare)

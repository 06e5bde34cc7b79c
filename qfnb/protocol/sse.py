"""Server-sent events, as the platform uses them: pure encode/decode, no I/O.

v1 streams send ``data: {json}`` events with ``is_end`` on the last one and no
``[DONE]``; v2 streams end with ``data: [DONE]``. A non-``data`` line that is JSON
is an error body sent mid-stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


def encode_event(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One SSE event, ready to write (JSON kept compact, non-ASCII kept as UTF-8)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


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

    Tolerates ``\\r\\n``, events split across chunks, multi-line ``data`` fields, and
    comment lines (``:``). Multi-byte characters must be decoded by the caller with an
    incremental decoder (httpx's ``aiter_text`` does that).
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._event: str | None = None

    def feed(self, text: str) -> Iterator[SSEItem]:
        self._buffer += text
        while True:
            cut = self._buffer.find("\n")
            if cut < 0:
                return
            line, self._buffer = self._buffer[:cut].rstrip("\r"), self._buffer[cut + 1:]
            yield from self._line(line)

    def close(self) -> Iterator[SSEItem]:
        """Flush what is left when the stream ends (a last event without a blank line)."""
        if self._buffer:
            line, self._buffer = self._buffer.rstrip("\r"), ""
            yield from self._line(line)
        yield from self._dispatch()

    def _line(self, line: str) -> Iterator[SSEItem]:
        if not line:
            yield from self._dispatch()
        elif line.startswith(":"):
            return
        elif line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            self._event = line[6:].strip()
        elif line.startswith(("id:", "retry:")):
            return
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

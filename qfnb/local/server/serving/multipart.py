"""A streaming ``multipart/form-data`` reader: a file part goes to disk as it arrives, so an
upload of any size is held in memory a chunk at a time (python-multipart is not a dependency)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

MAX_HEADER = 16 * 1024
_PARAM = re.compile(r'([a-zA-Z*]+)="([^"]*)"|([a-zA-Z*]+)=([^;\s]*)')


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass
class Part:
    name: str
    filename: str | None


def boundary_of(content_type: str) -> bytes:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise MultipartError("Content-Type must be multipart/form-data")
    for m in _PARAM.finditer(params):
        key, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if key.lower() == "boundary" and value:
            return value.encode("latin-1")
    raise MultipartError("multipart/form-data without a boundary")


class MultipartReader:
    """``async for part, body in reader.parts()``: drain ``body`` before asking for the next part."""

    def __init__(self, stream: AsyncIterator[bytes], boundary: bytes) -> None:
        self._stream = stream
        self._buf = b""
        self._delim = b"\r\n--" + boundary

    async def _more(self) -> bool:
        try:
            self._buf += await anext(self._stream)
        except StopAsyncIteration:
            return False
        return True

    async def parts(self) -> AsyncIterator[tuple[Part, AsyncIterator[bytes]]]:
        first = self._delim[2:]
        while (i := self._buf.find(first)) < 0:
            if len(self._buf) > MAX_HEADER or not await self._more():
                raise MultipartError("no multipart boundary found")
        self._buf = self._buf[i + len(first):]
        while True:
            while len(self._buf) < 2:
                if not await self._more():
                    raise MultipartError("the body ends inside a part")
            if self._buf.startswith(b"--"):
                return
            while (j := self._buf.find(b"\r\n\r\n")) < 0:
                if len(self._buf) > MAX_HEADER or not await self._more():
                    raise MultipartError("a part's headers do not end")
            head = self._buf[:j].decode("utf-8", "replace")
            self._buf = self._buf[j + 4:]
            yield _part(head), self._body()

    async def _body(self) -> AsyncIterator[bytes]:
        keep = len(self._delim) - 1
        while True:
            i = self._buf.find(self._delim)
            if i >= 0:
                if i:
                    yield self._buf[:i]
                self._buf = self._buf[i + len(self._delim):]
                return
            if len(self._buf) > keep:
                chunk, self._buf = self._buf[:-keep], self._buf[-keep:]
                yield chunk
            if not await self._more():
                raise MultipartError("the body ends inside a part")


def _part(head: str) -> Part:
    for line in head.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-disposition":
            params = {}
            for m in _PARAM.finditer(value):
                k, v = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                params[k.lower()] = v
            if "name" in params:
                return Part(params["name"], params.get("filename"))
    raise MultipartError("a part has no Content-Disposition name")

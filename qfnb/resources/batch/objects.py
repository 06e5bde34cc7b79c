"""A batch job's objects in the platform's BOS, moved in bounded pieces (issue 22: a 100,000-row
job runs in bounded memory on the client too).

* :func:`aupload_lines` sends lines as they come from an iterable, one ``AppendObject``
  (``POST …?append&offset=N``) per ``chunk_bytes``: the client never holds more than one piece.
* :func:`aiter_lines` reads an object back with ranged ``GET`` s (``Range: bytes=a-b``), one piece
  at a time, and yields it line by line.

Both are BOS's own calls, signed as every BOS call is (bce-auth-v1).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from qfnb._core.errors import QfnbError

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb._core.http.client import AsyncQianfanClient

#: bytes per appended or ranged piece
CHUNK_BYTES = 1024 * 1024
_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def object_url(cfg: Config, uri: str) -> str:
    """``bos:/bucket/key`` -> the signed URL of the object on ``cfg``'s BOS endpoint."""
    return f"{cfg.bos_endpoint.rstrip('/')}/{uri[len('bos:/'):].lstrip('/')}"


def _client(cfg: Config) -> AsyncQianfanClient:
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`%load_ext qfnb` does not)

    return get_client(cfg)


async def _append(client: AsyncQianfanClient, url: str, offset: int, piece: bytes) -> int:
    try:
        await client.signed_request("POST", url, params={"append": "", "offset": str(offset)}, content=piece)
    except QfnbError as exc:  # a retried append that had landed: the object already ends with it
        headers = getattr(exc, "headers", None) or {}
        if getattr(exc, "status_code", None) != 409 or headers.get("x-bce-next-append-offset") != str(
                offset + len(piece)):
            raise
    return offset + len(piece)


async def aupload_lines(cfg: Config, uri: str, lines: Iterable[str], *, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Write ``lines`` (each ending in a newline) to the new object ``uri``; returns its size."""
    client, url = _client(cfg), object_url(cfg, uri)
    offset, pending = 0, bytearray()
    for line in lines:
        pending += line.encode("utf-8")
        if len(pending) >= chunk_bytes:
            offset = await _append(client, url, offset, bytes(pending))
            pending.clear()
    if pending or not offset:
        offset = await _append(client, url, offset, bytes(pending))
    return offset


def _missing(exc: QfnbError) -> bool:
    return getattr(exc, "status_code", None) in (404, 416) or "NoSuchKey" in str(exc)


async def aiter_lines(cfg: Config, uri: str, *, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """The object's non-empty lines, read ``chunk_bytes`` at a time; nothing if it does not exist."""
    client, url = _client(cfg), object_url(cfg, uri)
    start, rest = 0, b""
    while True:
        try:
            got = await client.signed_request("GET", url, headers={"Range": f"bytes={start}-{start + chunk_bytes - 1}"})
        except QfnbError as exc:  # 404: no such object (nothing written yet); 416: read to its end
            if _missing(exc):
                break
            raise
        piece = got.body.get("_bytes", b"") if isinstance(got.body, dict) else b""
        found = _RANGE.match(str(got.headers.get("content-range") or got.headers.get("Content-Range") or ""))
        *lines, rest = (rest + piece).split(b"\n")
        for line in lines:
            if line.strip():
                yield line
        start += len(piece)
        if got.code != 206 or found is None or not piece or found.group(3) == str(start):
            break  # a whole answer (no range support), or the last piece
    if rest.strip():
        yield rest

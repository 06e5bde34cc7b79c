"""JSON read and written in C by orjson where it is installed (the ``server`` extra brings it), by
the standard library otherwise, with the same values either way. A long embedding job reads and
writes about 5 KB of numbers a text, and :mod:`json` spends a large share of a 2-core machine on them.

What orjson would read or write differently goes to :mod:`json`: ``NaN`` and ``Infinity`` (orjson
refuses to read them and writes ``null``), integers beyond 64 bits (orjson reads them as floats),
lone surrogates, keys that are not strings, subclasses of the JSON types, dataclasses and dates
(which :mod:`json` refuses to write)."""

from __future__ import annotations

import json
import math
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the client installed without the server extra
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps", "dumps_ascii", "dumps_text", "loads"]

#: every digit as ``0``: a run of 20 digits (maybe an integer beyond 64 bits, which orjson would read
#: as a float) is then a substring search, about a tenth of the CPU of the regex ``\d{20}`` on the
#: many 8- and 9-digit runs of an embeddings answer (which it tries again from each of their digits)
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 20
_PASSTHROUGH = 0 if orjson is None else (orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
                                         | orjson.OPT_PASSTHROUGH_SUBCLASS)


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``, faster."""
    if orjson is not None:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if _LONG_NUMBER not in raw.translate(_DIGITS):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # NaN, a lone surrogate, or not JSON: json reads it, or says why not
    return json.loads(data)


def dumps(obj: Any) -> bytes:
    """``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`` as UTF-8, faster (the platform's
    stream events, one a token)."""
    raw = _written(obj)
    return raw if raw is not None else json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


#: compact JSON with every non-ASCII character escaped (made once: ``json.dumps`` with options builds one a call)
_ASCII = json.JSONEncoder(separators=(",", ":"))


def dumps_ascii(obj: Any) -> bytes:
    """``json.dumps(obj, separators=(",", ":"))``, ASCII only (``\\u`` escapes, as the official SDK sends a
    request), faster where the text is ASCII already (a request body, one a call)."""
    raw = _written(obj)
    return raw if raw is not None and raw.isascii() else _ASCII.encode(obj).encode()


def dumps_text(obj: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))``, faster."""
    raw = _written(obj)
    return raw.decode("utf-8") if raw is not None else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _written(obj: Any) -> bytes | None:
    """``obj`` written by orjson, or None where :mod:`json` would write it otherwise (or orjson is absent)."""
    if orjson is None:
        return None
    try:
        raw: bytes = orjson.dumps(obj, option=_PASSTHROUGH)
    except TypeError:  # orjson.JSONEncodeError: a non-str key, a big int, a type left to json
        return None
    return raw if b"null" not in raw or not _nonfinite(obj) else None


def _nonfinite(obj: Any) -> bool:
    """Whether a float NaN or infinity is in ``obj`` (orjson wrote it as ``null``)."""
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_nonfinite(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(_nonfinite(v) for v in obj)
    return False

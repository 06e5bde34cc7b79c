"""Values every room of the platform shares: the body error, a missing object, resource names, times."""

from __future__ import annotations

import re
import time
from typing import Any

from qfnb.protocol.errors import ErrorCode


def iso(ts: float | None) -> str | None:
    """``2024-01-01T00:00:00Z`` for an epoch time (None stays None)."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class BodyError(Exception):
    """A request body the platform rejects; ``code`` is the v1 error code."""

    def __init__(self, field: str, message: str, code: int = ErrorCode.INVALID_PARAM) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.code = int(code)


def bounded_int(body: dict[str, Any], field: str, default: int, low: int, high: int) -> int:
    """``body[field]`` (``default`` when absent), an integer in [low, high]; BodyError naming ``field`` otherwise."""
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BodyError(field, f"must be an integer in [{low}, {high}], got {value!r:.40}")
    return value


class NotFound(Exception):
    """A referenced console object does not exist."""


#: an endpoint suffix: a URL path segment
_SUFFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def check_name(field: str, value: Any, *, suffix: bool = False) -> str:
    """``value`` if it is a valid resource name, else a BodyError naming ``field``.

    A display name (service, model, dataset) is 1-64 printable characters, not ``.``/``..``
    and without ``/`` or ``\\``; an endpoint ``suffix`` is 1-64 letters, digits, ``_ . -``
    starting with a letter or digit.
    """
    if suffix:
        if not isinstance(value, str) or not _SUFFIX.fullmatch(value):
            raise BodyError(field, "must be 1-64 letters, digits, '_', '.' or '-' starting with a letter or digit, "
                            f"got {value!r:.80}")
        return value
    if (not isinstance(value, str) or not value.strip() or len(value) > 64 or value in (".", "..")
            or not value.isprintable() or any(c in value for c in "/\\")):
        raise BodyError(field, f"must be 1-64 printable characters without '/' or '\\', got {value!r:.80}")
    return value

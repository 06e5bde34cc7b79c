"""URLs and their paths as qfnb writes and reads them: a base URL or a path means the same with or
without its trailing slash, and a name put into a path is quoted as one part."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["last_part", "under", "url_of"]


def url_of(base: str, path: str) -> str:
    """``path`` (from its leading ``/``) under the base URL ``base``, written with or without a trailing slash."""
    return base.rstrip("/") + path


def last_part(path: str) -> str:
    """A path's last part, written with or without a trailing slash (``/v1/batches/`` -> ``batches``)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def under(path: str, *names: str, up: int = 0) -> str:
    """``path`` less its last ``up`` parts, then ``names``, each quoted as one part
    (``under("/v1/batches/", "files", "f/1", up=1)`` -> ``/v1/files/f%2F1``)."""
    parts = path.rstrip("/").split("/")
    return "/".join([*parts[:len(parts) - up], *(quote(name, safe="") for name in names)])

"""Private files written atomically: the one writer of runtime files, credentials, job state,
pipeline records and generated data files, for the client and the platform alike."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["jsonl", "write_private_json", "write_private_text"]


def jsonl(rows: Iterable[Any]) -> str:
    """``rows`` as JSON lines (non-ASCII kept)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_private_json(path: Path, data: Any, *, exclusive: bool = False, indent: int | None = None) -> bool:
    """Write ``data`` as JSON to ``path`` with mode 0600, atomically (a reader sees the old file or
    the whole new one, never a part). With ``exclusive``, only if ``path`` does not exist yet (a
    concurrent writer's file wins); returns whether this call wrote it."""
    return write_private_text(path, json.dumps(data, ensure_ascii=False, indent=indent, default=str),
                              exclusive=exclusive)


def write_private_text(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Write ``text`` to ``path`` as :func:`write_private_json` writes JSON: 0600, atomically, under a
    fresh unpredictable temporary name (``mkstemp``: nothing planted in the folder is written through)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)

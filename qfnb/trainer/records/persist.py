"""Pipeline records on disk: one JSON file per pipeline, replaced atomically.

Location: ``$QIANFAN_CACHE_DIR`` (or the data dir's ``cache``: ``$QFNB_DATA_DIR/cache``,
``~/.qfnb/cache`` by default) ``/pipeline/<id>.json``, so each data dir lists its own jobs. Records hold
ids, states and configs only — never credentials (configs are not stored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.files import write_private_json


def cache_dir() -> Path:
    base = os.environ.get("QIANFAN_CACHE_DIR")
    return Path(base).expanduser() if base else default_data_dir() / "cache"


def disabled() -> bool:
    return os.environ.get("QIANFAN_DISABLE_CACHE", "").strip().lower() in ("1", "true", "yes")


def pipeline_dir() -> Path:
    return cache_dir() / "pipeline"


def _check_id(pipeline_id: str) -> str:
    if not pipeline_id or not all(c.isalnum() or c in "-_" for c in pipeline_id):
        raise ValidationError("id", f"invalid pipeline id {pipeline_id!r}")
    return pipeline_id


def record_path(pipeline_id: str) -> Path:
    return pipeline_dir() / f"{_check_id(pipeline_id)}.json"


def write_record(record: dict[str, Any]) -> Path | None:
    """Atomically replace the record file (write temp + fsync + rename)."""
    if disabled():
        return None
    path = record_path(str(record["id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_json(path, record, indent=1)
    return path


def read_record(pipeline_id: str) -> dict[str, Any]:
    path = record_path(pipeline_id)
    if not path.exists():
        raise ValidationError("id", f"no saved trainer {pipeline_id!r} under {pipeline_dir()}")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def list_records() -> list[dict[str, Any]]:
    """Every saved record, newest first (unreadable files are skipped)."""
    out = []
    for path in pipeline_dir().glob("*.json"):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: r.get("updated", 0), reverse=True)

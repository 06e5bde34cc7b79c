"""A platform dataset's entities (``entity/list``, ``entity/annotate``, ``entity/delete``).

On the local platform an entity is one stored row (a prompt and its response). Its id is
``<position>-<fingerprint>``: where the row is and a hash of what it holds, so an id that no
longer names the same row (the row changed, or an earlier one was deleted) is refused instead of
changing another row; ``entity/list`` gives the current ids.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from qfnb.local.domain.state import site
from qfnb.local.domain.state.datasets import dataset_rows, normalize_rows, write_rows
from qfnb.local.domain.state.site import Site
from qfnb.local.domain.state.values import BodyError, bounded_int

__all__ = ["annotate", "delete", "list_page"]

#: the largest page ``entity/list`` answers
MAX_PAGE = 1000


def entity_id(position: int, row: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
    return f"{position}-{digest}"


def _view(position: int, row: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(row, ensure_ascii=False).encode())
    return {"id": entity_id(position, row), "name": "", "labels": [], "url": "", "isEncrypted": False,
            "memorySize": round(size / 1024 / 1024, 6),
            "content": [{"prompt": row.get("prompt", ""), "response": [[row.get("response", "")]]}]}


def _dataset(platform: Site, body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ds = site.get(platform, "datasets", body.get("datasetId"), "datasetId")
    return ds, dataset_rows(platform.settings.data_dir, ds)


def list_page(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    """A page of the dataset's entities (``offset``, ``pageSize``); each has its row as ``content``."""
    _ds, rows = _dataset(platform, body)
    offset = bounded_int(body, "offset", 0, 0, 2**31)
    size = bounded_int(body, "pageSize", 20, 1, MAX_PAGE)
    items = [_view(i, rows[i]) for i in range(offset, min(len(rows), offset + size))]
    return {"totalAll": len(rows), "total": len(rows), "items": items}


def _position(entity: Any, rows: list[dict[str, Any]], field: str) -> int:
    """The row an entity id names now; BodyError when it names none (or a changed one)."""
    head = entity.split("-", 1)[0] if isinstance(entity, str) else ""
    if not head.isdigit() or int(head) >= len(rows) or entity_id(int(head), rows[int(head)]) != entity:
        raise BodyError(field, f"entity {entity!r} is not in this dataset (ids change when a row is changed or "
                               "an earlier one deleted: list the entities again)")
    return int(head)


def annotate(platform: Site, body: dict[str, Any]) -> bool:
    """Replace one entity's row with ``content`` (``[{"prompt": ..., "response": [[...]]}]``)."""
    ds, rows = _dataset(platform, body)
    at = _position(body.get("id"), rows, "id")
    content = body.get("content")
    if body.get("labels") is not None and content is None:
        raise BodyError("labels", "the local platform keeps text rows only: annotate with content=")
    found = normalize_rows(content) if isinstance(content, list | dict) else []
    if len(found) != 1 or "record" in found[0]:  # another train mode's record is no annotated turn
        raise BodyError("content", "must be one turn: [{\"prompt\": \"...\", \"response\": [[\"...\"]]}]")
    rows[at] = {**rows[at], **found[0]}
    write_rows(platform.settings.data_dir, ds, rows)
    platform.store.update("datasets", ds["id"], modified=time.time())
    return True


def delete(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    """Delete entities by id; every id is checked before any row goes."""
    ds, rows = _dataset(platform, body)
    ids = body.get("id")
    if not isinstance(ids, list) or not ids:
        raise BodyError("id", "must be a non-empty list of entity ids")
    gone = {_position(e, rows, f"id[{i}]") for i, e in enumerate(ids)}
    kept = [r for i, r in enumerate(rows) if i not in gone]
    count = write_rows(platform.settings.data_dir, ds, kept)
    platform.store.update("datasets", ds["id"], entityCount=count, modified=time.time())
    return {"failedOnes": None}

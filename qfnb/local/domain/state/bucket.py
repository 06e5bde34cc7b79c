"""The local BOS beyond one object's bytes: delete, copy, list a bucket (BOS ``ListObjects``).

Objects live as files under ``<data_dir>/objects/<bucket>/<key>`` (:class:`ObjectStore`); an
upload's temporary ``.<name>.<hex>.part`` file is never an object.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from qfnb.local.domain.state.datasets import ObjectStore
from qfnb.local.domain.state.values import iso

_PART = re.compile(r"^\..+\.[0-9a-f]{12}\.part$")
#: the local BOS's one region (``GetBucketLocation``; a dataset's ``storageInfo.region``)
REGION = "local"
#: at most this many keys in one listing (BOS's own cap)
MAX_KEYS = 1000


def delete(store: ObjectStore, bucket: str, key: str) -> bool:
    """Remove the object; False when there is none. Empty folders left behind are removed too."""
    target = store.path(bucket, key)
    if not target.is_file():
        return False
    target.unlink()
    top = store.root / bucket
    parent = target.parent
    while parent != top and parent.is_relative_to(top) and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    return True


def copy(store: ObjectStore, source: tuple[str, str], bucket: str, key: str) -> Path:
    """BOS ``CopyObject``: the object ``source`` (bucket, key) copied to ``bucket``/``key``;
    FileNotFoundError when the source does not exist."""
    src = store.path(*source)
    if not src.is_file():
        raise FileNotFoundError(f"{source[0]}/{source[1]}")
    target = store.path(bucket, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return target


def _keys(top: Path) -> list[str]:
    if not top.is_dir():
        return []
    return sorted(p.relative_to(top).as_posix() for p in top.rglob("*")
                  if p.is_file() and not _PART.match(p.name))


def listing(store: ObjectStore, bucket: str, *, prefix: str = "", delimiter: str = "", marker: str = "",
            max_keys: int = MAX_KEYS) -> dict[str, Any]:
    """BOS ``ListObjects``'s answer: keys after ``marker`` starting with ``prefix``, in key order; with
    a ``delimiter``, keys holding it past the prefix are rolled up into ``commonPrefixes``."""
    store.path(bucket, "x")  # the bucket name's checks
    top = store.root / bucket
    contents: list[dict[str, Any]] = []
    prefixes: list[str] = []
    truncated, last = False, ""
    for key in _keys(top):
        if not key.startswith(prefix) or key <= marker:
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        rolled = key[:cut + len(delimiter)] if cut >= 0 else None
        if rolled is not None and (rolled in prefixes or rolled <= marker):
            continue
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        last = rolled or key
        if rolled is not None:
            prefixes.append(rolled)
        else:
            stat = (top / key).stat()
            contents.append({"key": key, "lastModified": iso(stat.st_mtime),
                             "eTag": str(stat.st_size), "size": stat.st_size, "storageClass": "STANDARD"})
    out: dict[str, Any] = {"name": bucket, "prefix": prefix, "delimiter": delimiter, "marker": marker,
                           "maxKeys": max_keys, "isTruncated": truncated, "contents": contents,
                           "commonPrefixes": [{"prefix": p} for p in prefixes]}
    if truncated:
        out["nextMarker"] = last
    return out

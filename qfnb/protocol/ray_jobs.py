"""What a qfnb job on a Ray cluster prints into its log for the other side to read back (the log is
the only channel a Jobs API client has to a job), and which Ray this side speaks. Pure: the client
(``qfnb.resources.batch_ray``), the local platform's fine-tune follower and the cluster's entrypoints
(``qfnb.local.cluster``) share it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["FILE_PREFIX", "MIN_RAY", "RESULT_PREFIX", "TRAIN_PREFIX", "log_items", "ray_version_problem"]

#: the oldest Ray whose Jobs API this side speaks (submission ids, metadata, working_dir uploads)
MIN_RAY = (2, 9)
#: a fine-tune's progress line (the worker's ``progress.jsonl`` line, as it was written)
TRAIN_PREFIX = "QFNB-TRAIN "
#: a piece of a file the job sends back: ``{"path", "part", "parts", "data"}`` (``data`` base64)
FILE_PREFIX = "QFNB-FILE "
#: a fine-tune's result (the worker's ``result.json``), printed last
RESULT_PREFIX = "QFNB-RESULT "


def ray_version_problem(version: str) -> str | None:
    """Why a head running Ray ``version`` is one this side cannot speak to; None when it can."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return f"did not say which Ray it runs ({version!r})"
    if major != MIN_RAY[0] or (major, minor) < MIN_RAY:
        return (f"runs Ray {version}; qfnb speaks Ray {MIN_RAY[0]}.x from {MIN_RAY[0]}.{MIN_RAY[1]} "
                "(install a matching ray on the cluster)")
    return None


def log_items(logs: str, prefixes: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(prefix, object)`` for each JSON object a job's log holds after one of ``prefixes``, in the
    order printed (a torn line is skipped; Ray may put a worker's ``(pid=...)`` before the prefix)."""
    found = []
    for line in logs.splitlines():
        for prefix in prefixes:
            at = line.find(prefix)
            if at < 0:
                continue
            try:
                item = json.loads(line[at + len(prefix):])
            except ValueError:
                break
            if isinstance(item, dict):
                found.append((prefix, item))
            break
    return found

"""The engines' lane of a request: ``X-Qfnb-Priority: batch`` marks batch traffic (qfnb's
``batch_do`` calls), anything else is interactive (:mod:`qfnb.local.engines.lanes`)."""

from __future__ import annotations

from starlette.requests import Request

from qfnb.local.engines import lanes
from qfnb.local.engines.ask import BATCH, INTERACTIVE

PRIORITY_HEADER = "x-qfnb-priority"


def lane_of(request: Request) -> str:
    """The request's lane; also set as the lane of the engines it reaches without an ask (rerank)."""
    batch = request.headers.get(PRIORITY_HEADER, "").strip().lower() == BATCH
    lane = BATCH if batch else INTERACTIVE
    lanes.priority.set(lane)
    return lane

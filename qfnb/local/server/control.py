"""The daemon's control routes: ``GET /qfnb/status`` and ``POST /qfnb/shutdown``.

Both need the runtime file's control token (``X-Qfnb-Control``); the file is 0600, so only
the user who owns the data dir can read its token.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.protocol.batch import ACTIVE as BATCH_ACTIVE
from qfnb.protocol.console import EvalState, RunStatus
from qfnb.protocol.daemon import CONTROL_HEADER, SHUTDOWN_ROUTE, STATUS_ROUTE


def _rss_bytes(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii"):  # noqa: SIM115 - short read
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def running_jobs(platform: Platform) -> list[dict[str, Any]]:
    """Fine-tune runs, evaluations and batch-inference tasks that are under way."""
    runs = platform.store.all("runs", lambda r: r.get("status") in (RunStatus.WAITING.value, RunStatus.RUNNING.value))
    evals = platform.store.all("evaluations", lambda e: e.get("state") in (
        EvalState.PENDING.value, EvalState.DOING.value))
    batches = platform.store.all("batches", lambda b: b.get("runStatus") in BATCH_ACTIVE)
    return ([{"kind": "fine-tune", "id": r["sid"], "status": r["status"]} for r in runs]
            + [{"kind": "evaluation", "id": e["sid"], "status": e["state"]} for e in evals]
            + [{"kind": "batch-inference", "id": b["sid"], "status": b["runStatus"]} for b in batches])


def engine_states(platform: Platform) -> list[dict[str, Any]]:
    """Per engine: model, endpoint, state (stopped/starting/ready/failed), since, slots, busy, queued."""
    states = getattr(platform.registry, "engine_states", None)
    return list(states()) if states is not None else []


def status(platform: Platform, started: float, version: str) -> dict[str, Any]:
    """What ``qfnb status`` shows."""
    pid = os.getpid()
    kids = _children(pid)
    return {"pid": pid, "version": version, "uptimeSeconds": round(time.time() - started, 1),
            "dataDir": str(platform.settings.data_dir), "modelsLoaded": sorted(platform.loaded_models()),
            "engines": engine_states(platform),
            "jobsRunning": running_jobs(platform), "memoryBytes": _rss_bytes(pid),
            "childMemoryBytes": sum(_rss_bytes(k) for k in kids)}


def routes(token: str, started: float, version: str, request_exit: Callable[[], None]) -> list[Route]:
    """The control routes, guarded by ``token``."""

    def allowed(request: Request) -> bool:
        return hmac.compare_digest(request.headers.get(CONTROL_HEADER, ""), token)

    async def get_status(request: Request) -> JSONResponse:
        if not allowed(request):
            return JSONResponse({"error": "control token required"}, status_code=403)
        return JSONResponse(status(request.app.state.platform, started, version))

    async def shutdown(request: Request) -> JSONResponse:
        if not allowed(request):
            return JSONResponse({"error": "control token required"}, status_code=403)
        jobs = running_jobs(request.app.state.platform)
        if jobs and request.query_params.get("force") not in ("1", "true"):
            return JSONResponse({"stopped": False, "jobsRunning": jobs}, status_code=409)
        request_exit()
        return JSONResponse({"stopped": True, "jobsRunning": jobs})

    return [Route(STATUS_ROUTE, get_status, methods=["GET"]), Route(SHUTDOWN_ROUTE, shutdown, methods=["POST"])]

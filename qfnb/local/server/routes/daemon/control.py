"""The daemon's control routes: ``GET /qfnb/status`` and ``POST /qfnb/shutdown``.

Both need the runtime file's control token (``X-Qfnb-Control``); the file is 0600, so only
the user who owns the data dir can read its token.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.engines.call_state import calls
from qfnb.local.engines.store.byom import descendants, rss_bytes
from qfnb.local.server.routes.daemon import models_control
from qfnb.protocol.console.enums import EvalState, RunStatus
from qfnb.protocol.platform.daemon import (
    CONTROL_HEADER,
    SHUTDOWN_ROUTE,
    STATUS_ROUTE,
    DaemonStatus,
    EngineState,
    RunningJob,
)
from qfnb.protocol.wires.qianfan.batch import ACTIVE as BATCH_ACTIVE
from qfnb.protocol.wires.qianfan.signing import same_secret


def running_jobs(platform: Platform) -> list[RunningJob]:
    """Fine-tune runs, evaluations and batch-inference tasks that are under way."""
    runs = platform.store.all("runs", lambda r: r.get("status") in (RunStatus.WAITING.value, RunStatus.RUNNING.value))
    evals = platform.store.all("evaluations", lambda e: e.get("state") in (
        EvalState.PENDING.value, EvalState.DOING.value))
    batches = platform.store.all("batches", lambda b: b.get("runStatus") in BATCH_ACTIVE)
    return ([RunningJob("fine-tune", str(r["sid"]), str(r["status"])) for r in runs]
            + [RunningJob("evaluation", str(e["sid"]), str(e["state"])) for e in evals]
            + [RunningJob("batch-inference", str(b["sid"]), str(b["runStatus"])) for b in batches])


def engine_states(platform: Platform) -> list[EngineState]:
    """Per engine: model, endpoint, state (stopped/starting/ready/failed), since, slots, busy, queued."""
    return [e for e in map(EngineState.from_dict, platform.registry.engine_states()) if e is not None]


def status(platform: Platform, started: float, version: str) -> DaemonStatus:
    """What ``qfnb status`` shows."""
    pid = os.getpid()
    return DaemonStatus(pid=pid, version=version, uptime_seconds=round(time.time() - started, 1),
                        data_dir=str(platform.settings.data_dir), models_loaded=tuple(sorted(platform.loaded_models())),
                        engines=tuple(engine_states(platform)), jobs_running=tuple(running_jobs(platform)),
                        memory_bytes=rss_bytes(pid), child_memory_bytes=sum(rss_bytes(k) for k in descendants(pid)),
                        model_calls=calls.snapshot(), answered_calls=platform.meter.calls.answered())


def routes(token: str, started: float, version: str, request_exit: Callable[[], None]) -> list[Route]:
    """The control routes, guarded by ``token``."""

    def allowed(request: Request) -> bool:
        return same_secret(request.headers.get(CONTROL_HEADER, ""), token)

    async def get_status(request: Request) -> JSONResponse:
        return JSONResponse(status(request.app.state.platform, started, version).to_dict())

    async def shutdown(request: Request) -> JSONResponse:
        jobs = [asdict(j) for j in running_jobs(request.app.state.platform)]
        if jobs and request.query_params.get("force") not in ("1", "true"):
            return JSONResponse({"stopped": False, "jobsRunning": jobs}, status_code=409)
        request_exit()
        return JSONResponse({"stopped": True, "jobsRunning": jobs})

    return [Route(STATUS_ROUTE, models_control.guarded(allowed, get_status), methods=["GET"]),
            Route(SHUTDOWN_ROUTE, models_control.guarded(allowed, shutdown), methods=["POST"]),
            *models_control.routes(allowed)]

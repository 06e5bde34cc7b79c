"""OpenAI's fine-tuning jobs through :class:`~qfnb._core.runtime.openai_recorded.RecordedTransport`, on
the record as every fine-tune is (:mod:`qfnb._core.http.recording.train_hold`).

Under a budget, a job's create first reads its training file from the platform (as it streams, a line
at a time) and holds its forecast trained tokens: each row's sequences (a chat; a DPO pair's prompt
with either answer) estimated from their text, each at most the platform's default sequence length,
times ``n_epochs``. One the budget cannot fit is answered 429 ``insufficient_quota`` naming the budget
and the forecast, uncreated. A job this face made is watched until it ends; an ended job that any read
shows (retrieve, list, cancel) settles its hold to its ``trained_tokens`` and is in the ledger once,
succeeded, failed or cancelled alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx2

from qfnb._core.config import Config
from qfnb._core.http.ratelimit import estimate_tokens
from qfnb._core.http.recording.batch_hold import Hold
from qfnb._core.http.recording.train_hold import hold_training, keep, settle_training
from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb._core.runtime.openai_batches import WatchingFace, get_beside, listed, over_budget, passed
from qfnb._core.transport import json_or_none
from qfnb._core.transport.urls import under
from qfnb.protocol.console.training import DEFAULTS

__all__ = ["FineTuneFace", "is_fine_tuning", "row_sequences"]

#: an OpenAI fine-tuning job's statuses once it has ended
_ENDED = ("succeeded", "failed", "cancelled")
#: tokens a chat turn takes beyond its text (its role and the template's markers), in the forecast
TURN_TOKENS = 4

logger = logging.getLogger("qfnb.usage")


def is_fine_tuning(path: str) -> bool:
    """``/v1/fine_tuning/jobs`` and what is under it (either API version)."""
    parts = path.strip("/").split("/")
    return len(parts) >= 3 and parts[0] in ("v1", "v2") and parts[1] == "fine_tuning" and parts[2] == "jobs"


def _creates(request: httpx2.Request) -> bool:
    return request.method == "POST" and request.url.path.rstrip("/").endswith("/fine_tuning/jobs")


def _turns_tokens(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(TURN_TOKENS + estimate_tokens(str(m.get("content") or "")) for m in messages if isinstance(m, dict))


def row_sequences(row: Mapping[str, Any]) -> list[int]:
    """The estimated tokens of each sequence one training row makes the model process: a chat's turns;
    a DPO pair's prompt with its preferred and with its other answer."""
    if isinstance(row.get("input"), Mapping):  # a preference pair
        prompt = _turns_tokens(row["input"].get("messages"))
        return [prompt + _turns_tokens(row.get(side)) for side in ("preferred_output", "non_preferred_output")]
    return [_turns_tokens(row.get("messages"))]


def _epochs(body: Mapping[str, Any]) -> int:
    """The job's ``n_epochs`` (the method's, else the legacy ``hyperparameters``'; "auto": the platform's)."""
    method = body.get("method") if isinstance(body.get("method"), Mapping) else {}
    inner = method.get(str(method.get("type") or "supervised")) if isinstance(method, Mapping) else None
    for hyper in ((inner or {}).get("hyperparameters") if isinstance(inner, Mapping) else None,
                  body.get("hyperparameters")):
        if isinstance(hyper, Mapping):
            value = hyper.get("n_epochs")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return int(DEFAULTS["epoch"])


class FineTuneFace(WatchingFace):
    """``/v1|/v2/fine_tuning/jobs`` requests of one transport: sent by ``inner``, held and recorded."""

    noun = "fine-tuning job"

    def ended(self, found: Mapping[str, Any]) -> bool:
        return _record_job(found, self.config)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        """A fine-tuning request: a create held first (429, uncreated, past the budget); each ended job its
        answer shows settled and recorded; a job made here watched until it ends."""
        hold = await self._hold(request) if _creates(request) and active_budget() is not None else None
        if isinstance(hold, httpx2.Response):
            return hold
        try:
            reply = await self.inner.handle_async_request(request)
            content = await reply.aread()
            await reply.aclose()
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        jobs = listed(json_or_none(content)) if reply.status_code == 200 else []
        if _creates(request):
            self._made(request, jobs[0] if len(jobs) == 1 and isinstance(jobs[0].get("id"), str) else None, hold)
        else:
            for job in jobs:
                _record_job(job, self.config)
        return httpx2.Response(reply.status_code, headers=passed(reply), content=content, request=request)

    async def _hold(self, request: httpx2.Request) -> Hold | httpx2.Response | None:
        """A create's forecast held against the budget; the refusal (or the platform's, of its file) as the answer."""
        body = json_or_none(await request.aread() or b"{}")
        if not isinstance(body, dict) or not isinstance(body.get("training_file"), str):
            return None  # the platform refuses it, naming the field
        forecast = await self._forecast(request, body)
        if isinstance(forecast, httpx2.Response):  # the file cannot be read: the platform's answer
            return forecast
        try:
            return hold_training(forecast, str(body.get("model") or ""), self.config,
                                 what=f"the fine-tuning job on {body['training_file']} ({_epochs(body)} epochs)")
        except BudgetExceeded as exc:
            return over_budget(exc, request)

    def _made(self, request: httpx2.Request, job: dict[str, Any] | None, hold: Hold | None) -> None:
        """A create's answer: the job it made keeps the hold and is watched; none made, the hold goes back."""
        if job is None:
            if hold is not None:
                hold.release()
            return
        keep(self.config, job["id"], hold)
        if not _record_job(job, self.config):
            self._watch(request, job["id"])

    async def _forecast(self, request: httpx2.Request, body: Mapping[str, Any]) -> int | httpx2.Response:
        """The job's forecast trained tokens, its training file read from the platform a line at a time."""
        read = get_beside(request, under(request.url.path.rstrip("/"), "files", str(body["training_file"]),
                                         "content", up=2))
        reply = await self.inner.handle_async_request(read)
        epoch = 0
        cap = int(DEFAULTS["maxSeqLen"])
        try:
            if reply.status_code != 200:
                content = await reply.aread()
                return httpx2.Response(reply.status_code, content=content, request=request,
                                       headers={"content-type": reply.headers.get("content-type", "application/json")})
            async for line in reply.aiter_lines():
                row = json_or_none(line)
                if isinstance(row, dict):
                    epoch += sum(min(n, cap) for n in row_sequences(row))
        finally:
            await reply.aclose()
        return epoch * _epochs(body)


def _record_job(job: Mapping[str, Any], config: Config) -> bool:
    """Whether the job has ended (its ``finished_at`` set); if so, its hold settled to its ``trained_tokens``
    and the job in the ledger once (whichever face or process sees it end first)."""
    if job.get("status") not in _ENDED or not job.get("finished_at") or not isinstance(job.get("id"), str):
        return False  # a cancel still stopping its run says finished_at once the run has ended
    created, finished = job.get("created_at"), job.get("finished_at")
    seconds = float(finished - created) if isinstance(created, int) and isinstance(finished, int) else 0.0
    tokens = job.get("trained_tokens")
    settle_training(config, job["id"], base=str(job.get("model") or "fine-tune"),
                    tokens=int(tokens) if isinstance(tokens, int) and not isinstance(tokens, bool) else 0,
                    seconds=seconds)
    return True

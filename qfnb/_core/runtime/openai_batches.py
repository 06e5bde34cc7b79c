"""The OpenAI Batch API through :class:`~qfnb._core.runtime.openai_recorded.RecordedTransport`: a
batch takes the durable batch task's hold (:mod:`~qfnb._core.http.recording.batch_hold`). Under a budget its
input file's rows are read from the platform and their worst case held before the batch is created
(one that would cross the budget is answered 429, uncreated); when the batch ends, seen by this
face's own watch of it or by a read of the client (retrieve, list, cancel), the hold settles to its
usage and the batch is in the ledger once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from qfnb._core.config import Config
from qfnb._core.http.recording.batch_hold import Hold, RowTally, hold_rows, keep, settle_task
from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb._core.transport import json_or_none
from qfnb._core.transport.urls import last_part, under

__all__ = ["WATCH_FIRST_S", "WATCH_MOST_S", "BatchFace", "is_batches", "over_budget", "watch_until"]

#: an OpenAI batch's statuses once it has ended
_ENDED = ("completed", "failed", "cancelled", "expired")
#: seconds between the watch's first reads of a batch it made, and at most (the wait grows by half each read)
WATCH_FIRST_S, WATCH_MOST_S = 1.0, 30.0

logger = logging.getLogger("qfnb.usage")


class WatchingFace:
    """The requests of one transport for OpenAI's long-running objects (batches, fine-tuning jobs): sent by
    ``inner``; an object made here is watched until it ends (:meth:`ended` settles and records it)."""

    #: what the watch calls an object, in its log lines
    noun = ""

    def __init__(self, config: Config, inner: httpx2.AsyncBaseTransport, *,
                 watch_first_s: float = WATCH_FIRST_S) -> None:
        self.config, self.inner, self.watch_first_s = config, inner, watch_first_s
        #: the watches of the objects this face made, until each sees its object end
        self._watches: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in list(self._watches):  # an object no longer watched settles when a reader sees it end
            task.cancel()

    def ended(self, found: Mapping[str, Any]) -> bool:
        """Whether the object ``found`` has ended; if so, its hold settled and it is in the ledger once."""
        raise NotImplementedError

    def _watch(self, request: httpx2.Request, object_id: str) -> None:
        read = get_beside(request, under(request.url.path.rstrip("/"), object_id))
        task = asyncio.get_running_loop().create_task(
            watch_until(self.inner, read, self.watch_first_s, f"{self.noun} {object_id}", self.ended))
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)


class BatchFace(WatchingFace):
    """``/v1|/v2/batches`` requests of one transport: sent by ``inner``, held and recorded."""

    noun = "batch"

    def ended(self, found: Mapping[str, Any]) -> bool:
        return _record_batch(found, self.config)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        """A batch request (:func:`is_batches`): a creation held first, any answer noted."""
        if _creates(request):
            return await self._create(request)
        return await self._note(request, await self.inner.handle_async_request(request))

    async def _create(self, request: httpx2.Request) -> httpx2.Response:
        """``POST /v1/batches``: under a budget, its input file's rows' worst case held first (429,
        uncreated, past the budget); the batch made, watched until it ends."""
        hold: Hold | None = None
        body = json_or_none(await request.aread() or b"{}")
        file_id = body.get("input_file_id") if isinstance(body, dict) else None
        if active_budget() is not None and isinstance(file_id, str) and file_id:
            tally = RowTally()
            model = await self._tally_file(request, file_id, tally)
            if isinstance(model, httpx2.Response):  # the file cannot be read: the platform's answer
                return model
            try:
                hold = hold_rows(tally, model or "batch", self.config,
                                 what=f"the OpenAI batch of {file_id} ({tally.rows:,} rows)")
            except BudgetExceeded as exc:
                return over_budget(exc, request)
        try:
            reply = await self._note(request, await self.inner.handle_async_request(request), hold)
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        return reply

    async def _tally_file(self, request: httpx2.Request, file_id: str, tally: RowTally) -> str | httpx2.Response:
        """Count each row of the uploaded file ``file_id`` into ``tally`` (read as it streams, as the
        platform reads it: a line that is not a request runs nothing); the first row's model, or the
        platform's refusal to give the file."""
        read = get_beside(request, under(request.url.path, "files", file_id, "content", up=1))
        reply = await self.inner.handle_async_request(read)
        model = ""
        try:
            if reply.status_code != 200:
                content = await reply.aread()
                return httpx2.Response(reply.status_code, headers=passed(reply), content=content, request=request)
            async for line in reply.aiter_lines():
                row = json_or_none(line)
                if isinstance(row, dict) and isinstance(row.get("body"), dict):
                    tally.add(row["body"])
                    model = model or str(row["body"].get("model") or "")
        finally:
            await reply.aclose()
        return model

    async def _note(self, request: httpx2.Request, reply: httpx2.Response,
                            hold: Hold | None = None) -> httpx2.Response:
        """A batch answer as it came; each ended batch it shows settles and goes to the ledger once (a
        row for the whole task, as a durable ``BatchJob``'s: whichever face sees it end first writes it).
        A batch just made (``hold``: what it holds, if anything) is kept and watched until it ends."""
        if reply.status_code != 200:
            if hold is not None:  # refused: nothing was created
                hold.release()
            return reply
        content = await reply.aread()
        await reply.aclose()
        batches = listed(json_or_none(content))
        made = _creates(request)
        if made and len(batches) == 1 and isinstance(batches[0].get("id"), str):
            if hold is not None:
                keep(self.config, batches[0]["id"], hold)
            if not _record_batch(batches[0], self.config):
                self._watch(request, batches[0]["id"])
        elif made and hold is not None:  # an answer that names no batch: nothing to hold for
            hold.release()
        else:
            for batch in batches:
                _record_batch(batch, self.config)
        return httpx2.Response(reply.status_code, headers=passed(reply), content=content, request=request)


async def watch_until(inner: httpx2.AsyncBaseTransport, read: httpx2.Request, first_s: float, what: str,
                      ended: Callable[[dict[str, Any]], bool]) -> None:
    """Read ``read`` through ``inner`` now and then (from ``first_s`` apart, growing to :data:`WATCH_MOST_S`)
    until ``ended`` says the object it reads has ended (and has settled it), or the platform forgets it."""
    wait = first_s
    while True:
        await asyncio.sleep(wait)
        wait = min(wait * 1.5, WATCH_MOST_S)
        try:
            reply = await inner.handle_async_request(httpx2.Request("GET", read.url, headers=read.headers))
            content = await reply.aread()
            await reply.aclose()
        except httpx2.HTTPError as exc:
            logger.debug("%s: the platform did not answer its watch (%s); reading again", what, exc)
            continue
        if reply.status_code == 404:
            logger.info("%s is gone from the platform; a reader of it settles it", what)
            return
        found = json_or_none(content) if reply.status_code == 200 else None
        if isinstance(found, dict) and ended(found):
            return


def listed(found: Any) -> list[dict[str, Any]]:
    """The objects an answer shows: a list's items (``"object": "list"``), or the one object it is."""
    if not isinstance(found, dict):
        return []
    return [o for o in ((found.get("data") or []) if found.get("object") == "list" else [found]) if isinstance(o, dict)]


def _creates(request: httpx2.Request) -> bool:
    """``POST /v1/batches``: a batch to be made."""
    return request.method == "POST" and last_part(request.url.path) == "batches"


def get_beside(request: httpx2.Request, path: str) -> httpx2.Request:
    """A ``GET`` of ``path`` on ``request``'s platform, under its authorization alone."""
    headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
    return httpx2.Request("GET", request.url.copy_with(path=path, query=None), headers=headers)


def is_batches(path: str) -> bool:
    """``/v1/batches``, ``/v1/batches/{id}`` and ``/v1/batches/{id}/cancel`` (either API version)."""
    parts = path.strip("/").split("/")
    return len(parts) >= 2 and parts[0] in ("v1", "v2") and parts[1] == "batches"


def _record_batch(batch: Mapping[str, Any], config: Config) -> bool:
    """Whether the OpenAI batch ``batch`` has ended; if so, its hold settled to its usage and its
    tokens in the ledger once per platform and task (the key a durable ``BatchJob`` writes under,
    so the two faces of one task never count it twice)."""
    usage = batch.get("usage")
    if batch.get("status") not in _ENDED or not isinstance(usage, Mapping) or not batch.get("id"):
        return False
    started, ended = batch.get("in_progress_at"), next(
        (batch[k] for k in ("completed_at", "failed_at", "cancelled_at", "expired_at") if batch.get(k)), None)
    seconds = float(ended - started) if isinstance(started, int) and isinstance(ended, int) else 0.0
    counts = batch.get("request_counts")
    settle_task(config, str(batch["id"]), prompt=int(usage.get("input_tokens") or 0),
                completion=int(usage.get("output_tokens") or 0), seconds=seconds,
                rows=int(counts.get("completed") or 0) if isinstance(counts, Mapping) else 1)
    return True


def passed(reply: httpx2.Response) -> dict[str, str]:
    """A reply's headers, to pass on with its body read whole."""
    return {k: v for k, v in reply.headers.items() if k.lower() not in ("content-encoding", "content-length")}


def over_budget(exc: BudgetExceeded, request: httpx2.Request) -> httpx2.Response:
    """The budget's refusal as OpenAI says a spent quota (429 ``insufficient_quota``), not to be retried:
    the openai SDK raises ``RateLimitError`` with the budget's message; nothing was sent."""
    error = {"message": str(exc), "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    return httpx2.Response(429, headers={"x-should-retry": "false"}, json={"error": error}, request=request)

"""No request may hold our shared ``llama-server``: a compute deadline and a stall watchdog per request.

llama-server runs every slot in one decode loop, and samples each slot's token inside that loop's
step: a grammar that makes the sampler explore (``^([a-z]{0,40}){0,40}$``) holds one step for
minutes, every other user's stream stops with it, and the cancellation a closed connection asks
for waits for that step too. So each request streamed from our own engine is watched
(:func:`guarded`):

- **compute deadline** (``QFNB_ENGINE_REQUEST_SECONDS``): a request that has had this much compute
  time since it was sent is cancelled (its connection closed) and its caller gets
  :class:`ComputeDeadline`. Compute time is wall time divided by the load the machine is under
  (:func:`load_stretch`, read as it goes): on a machine running twice the work it has CPUs for, an
  honest answer takes twice as long, and its deadline is twice as far in wall time;
- **stall** (``QFNB_ENGINE_STALL_SECONDS``): a request whose stream shows no progress for this long
  (no token, and no ``prompt_progress`` chunk while its prompt is read), stretched by the load alike,
  is cancelled, and the engine is asked whether it obeys (:meth:`.server.LlamaServer.unstick`: its
  decode loop answers between two steps, within a probe's time stretched by the load too, and the
  slot stops). One that does not is killed (SIGKILL) and restarted. The request that held it (one decoding
  under a grammar: a JSON schema) gets :class:`EngineStalled` naming the setting; every other
  request cut by the restart is sent again, once, to the new process, where it goes on from what it
  had already streamed (its prompt and the text so far; the tokens left of its ``max_tokens``), so
  its caller loses nothing (its deadline starts again there: the time lost was not its own).

External engines (no :class:`~.transport.Watch` on their endpoint) are streamed as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, Literal

from qfnb.local.engines.base import FINISH_LENGTH, Delta
from qfnb.local.engines.llama import transport
from qfnb.local.engines.llama.server import EngineUnavailable
from qfnb.local.engines.llama.transport import Endpoint, Watch

__all__ = ["ComputeDeadline", "EngineStalled", "guarded", "so_far"]

log = logging.getLogger("qfnb.local.engines")

#: body fields that constrain decoding by a grammar: a request with one is the suspect of a stuck loop
CONSTRAINED = ("json_schema", "grammar")
STALL_SETTING = "QFNB_ENGINE_STALL_SECONDS"
DEADLINE_SETTING = "QFNB_ENGINE_REQUEST_SECONDS"
#: the most the stall limit stretches on a loaded machine
MAX_LOAD_STRETCH = 8.0


def load_stretch() -> float:
    """How many times the stall limit is stretched now: the machine's 1-minute load average per CPU
    this process may use, from 1 to :data:`MAX_LOAD_STRETCH` (each engine step takes about that many
    times as long when the run queue holds that many times the CPUs)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return min(MAX_LOAD_STRETCH, max(1.0, load / max(1, len(os.sched_getaffinity(0)))))


class EngineStalled(EngineUnavailable):
    """A request made no decode progress for the stall limit and was cancelled."""


class ComputeDeadline(EngineUnavailable):
    """A request ran past the compute deadline and was cancelled."""


class _Expired(Exception):
    def __init__(self, kind: Literal["stall", "deadline"], stall: float, stretch: float) -> None:
        super().__init__(kind)
        self.kind, self.stall, self.stretch = kind, stall, stretch


class _Compute:
    """The compute time a request has had since it was sent: wall time, each stretch of it divided
    by the machine's load then (:func:`load_stretch`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.used, self.at = 0.0, loop.time()

    def tick(self, stretch: float) -> float:
        """The compute time so far, the wall time since the last tick counted at ``stretch``."""
        now = self.loop.time()
        self.used += (now - self.at) / stretch
        self.at = now
        return self.used


class _Reader:
    """One send of a body, read by a task of its own into a queue, so waiting for progress never
    cuts the stream; :meth:`close` cancels it (the connection closes: the engine cancels the slot)."""

    def __init__(self, name: str, target: Endpoint, path: str, body: dict[str, Any]) -> None:
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()  # the last progress seen
        self.queue: asyncio.Queue[tuple[Delta | None, Exception | None]] = asyncio.Queue(maxsize=64)
        self.task = asyncio.create_task(self._read(name, target, path, body), name=f"qfnb-engine-stream-{name}")

    def _beat(self) -> None:
        self.last = self.loop.time()

    async def _read(self, name: str, target: Endpoint, path: str, body: dict[str, Any]) -> None:
        try:
            async for delta in transport.stream(name, target, path, body, beat=self._beat):
                await self.queue.put((delta, None))
            await self.queue.put((None, None))
        except Exception as exc:  # handed to the waiting side
            await self.queue.put((None, exc))

    async def next(self, watch: Watch, compute: _Compute) -> Delta | None:
        """The next Delta (None: the answer ended); :class:`_Expired` when the stall limit (since
        the last progress) or the deadline (the request's ``compute`` time) passes first."""
        while True:
            stretch = load_stretch()
            left = watch.request_seconds - compute.tick(stretch)  # compute time, at this load
            now, stall = self.loop.time(), watch.stall_seconds * stretch
            stall_at, deadline = self.last + stall, now + max(0.0, left) * stretch
            if now >= min(stall_at, deadline):
                raise _Expired("deadline" if now >= deadline else "stall", stall, stretch)
            try:  # not asyncio.wait_for: on 3.11 it drops a cancellation that comes as the item does
                async with asyncio.timeout(min(stall_at, deadline) - now):
                    delta, exc = await self.queue.get()
            except TimeoutError:
                continue  # progress may have come meanwhile (a prompt chunk): the limits are read again
            if exc is not None:
                raise exc
            return delta

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _attempt(name: str, target: Endpoint, path: str, body: dict[str, Any], watch: Watch,
                   compute: _Compute) -> AsyncIterator[Delta]:
    """One send of ``body``: its Deltas as they come (:meth:`_Reader.next`)."""
    reader = _Reader(name, target, path, body)
    try:
        while (delta := await reader.next(watch, compute)) is not None:
            yield delta
    finally:
        await reader.close()


def _continued(body: dict[str, Any], written: str, done: int) -> dict[str, Any]:
    """``body`` sent again after ``written`` (``done`` tokens) was streamed: the text so far after
    the prompt (llama-server reads a list of token ids and strings as one prompt; a chat's turns end
    with it as the assistant's), the rest of ``max_tokens`` left to write."""
    if not written:
        return body
    if "messages" in body:  # a chat: the text so far as the assistant's turn, which the engine goes on with
        return {**body, "messages": [*body["messages"], {"role": "assistant", "content": written}],
                "max_tokens": int(body["max_tokens"]) - done}
    prompt = body["prompt"]
    prompt = [*prompt, written] if isinstance(prompt, list) else f"{prompt}{written}"
    return {**body, "prompt": prompt, "max_tokens": int(body["max_tokens"]) - done}


async def _judge(name: str, expired: _Expired, watch: Watch, slot: int | None, *, constrained: bool,
                 again: bool, so_far: str) -> None:
    """After a request's limit passed (its stream already closed): raise its caller's error (with
    ``so_far``, what it had done), or return when the engine was restarted under it by another
    request and it may go ``again``."""
    if expired.kind == "deadline":
        await asyncio.to_thread(watch.unstick, slot, expired.stretch)  # a loop that will not obey is restarted
        raise ComputeDeadline(f"{name}: the request ran past the compute deadline of {watch.request_seconds:g} s "
                              f"({DEADLINE_SETTING}{_at_load(expired.stretch)}) and was cancelled; {so_far}")
    if not await asyncio.to_thread(watch.unstick, slot, expired.stretch):
        raise EngineStalled(f"{name}: the request made no decode progress for {_limit(watch, expired)} "
                            f"({STALL_SETTING}) and was cancelled (the engine goes on serving); {so_far}")
    if constrained or not again:
        held = "under its JSON schema's grammar " if constrained else ""
        raise EngineStalled(f"{name}: the request held the engine's decode loop {held}with no progress for "
                            f"{_limit(watch, expired)} ({STALL_SETTING}): it was cancelled and the engine "
                            f"restarted; other requests were sent again; {so_far}")


def _at_load(stretch: float) -> str:
    """How the machine's load stretched a limit, as said to the caller (nothing when it did not)."""
    return f"; stretched {stretch:.1f} times in wall time by the machine's load" if stretch > 1.0 else ""


def _limit(watch: Watch, expired: _Expired) -> str:
    """The stall limit that passed, as said to the caller (with the machine's load, when it stretched it)."""
    if expired.stall <= watch.stall_seconds:
        return f"{watch.stall_seconds:g} s"
    return f"{expired.stall:.0f} s ({watch.stall_seconds:g} s stretched by the machine's load)"


def so_far(sent: float, first: float | None, now: float, tokens: int) -> str:
    """What a cancelled request had done: its wait for a first token (queued, then its prompt
    read) and the tokens it generated after (times on one clock, in seconds)."""
    if first is None:
        return f"it had no token after {now - sent:.1f} s (queued, or reading its prompt)"
    return f"it waited {first - sent:.1f} s for its first token, then generated {tokens} tokens in {now - first:.1f} s"


class _Answer:
    """What one request has streamed so far, over its sends (counts as the whole answer's)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.prompt = len(body["prompt"]) if isinstance(body.get("prompt"), list) else 0
        self.written, self.done = "", 0
        self.base: int | None = None  # tokens written before the send under way (None: the first send)

    def resume(self) -> bool:
        """A send again: True when it goes on after text already written (a continuation)."""
        self.base = self.done if self.written else None
        return self.base is not None

    def add(self, delta: Delta) -> Delta:
        if self.base is not None:  # a continuation's counts start after what was written
            delta = dataclasses.replace(delta, prompt_tokens=self.prompt,
                                        completion_tokens=self.base + delta.completion_tokens)
        else:
            self.prompt = max(self.prompt, delta.prompt_tokens)
        self.written, self.done = self.written + delta.text, max(self.done, delta.completion_tokens)
        return delta


def guarded(name: str, target: Endpoint, path: str, body: dict[str, Any]) -> AsyncIterator[Delta]:
    """``body`` streamed from ``path`` of the engine at ``target`` under its watch (see the module doc)."""
    if target.watch is None:
        return transport.stream(name, target, path, body)
    return _watched(name, target, target.watch, path, body)


async def _watched(name: str, target: Endpoint, watch: Watch, path: str, body: dict[str, Any]) -> AsyncIterator[Delta]:
    sent_at = asyncio.get_running_loop().time()
    compute = _Compute(asyncio.get_running_loop())
    constrained = any(body.get(k) for k in CONSTRAINED)
    slot = body.get("id_slot")
    sent: dict[str, Any] = {**body, "return_progress": True}  # prompt chunks read count as progress
    answer = _Answer(body)
    current, renewed = target, None
    first: float | None = None  # when its first token came
    try:
        for again in (True, False):
            try:
                async for delta in _attempt(name, current, path, sent, watch, compute):
                    first = first if first is not None else asyncio.get_running_loop().time()
                    yield answer.add(delta)
                return
            except _Expired as expired:
                done = so_far(sent_at, first, asyncio.get_running_loop().time(), answer.done)
                await _judge(name, expired, watch, slot, constrained=constrained, again=again, so_far=done)
            except EngineUnavailable:
                # the stream broke: if the engine was killed as stuck (for another request), go again
                if not again or not await asyncio.to_thread(watch.unstick, slot, load_stretch()):
                    raise
            log.warning("%s: the engine was restarted under a request that held it: sending this one again "
                        "(%d tokens already streamed)", name, answer.done)
            if renewed is not None and renewed.release is not None:
                renewed.release()
            current = renewed = await asyncio.to_thread(watch.renew)
            compute = _Compute(asyncio.get_running_loop())  # its deadline counts its own compute, not the stall
            sent = _continued(sent, answer.written, answer.done)
            answer.resume()
            if int(sent.get("max_tokens") or 1) < 1:
                yield Delta("", FINISH_LENGTH, answer.prompt, answer.done)
                return
    finally:
        if renewed is not None and renewed.release is not None:
            renewed.release()

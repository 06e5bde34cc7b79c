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

A request answered whole (a token's score: :func:`guarded_reply`) is watched alike; it shows no
progress before its answer, so its stall limit runs from its send.

External engines (no :class:`~.transport.Watch` on their endpoint) are streamed as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Literal, TypeVar

import httpx

from qfnb.local.engines.base import FINISH_LENGTH, Delta, aclose
from qfnb.local.engines.llama import prompts
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint, Watch
from qfnb.local.engines.llama.process.server import EngineUnavailable

__all__ = ["ComputeDeadline", "EngineStalled", "guarded", "guarded_reply", "release", "so_far"]

log = logging.getLogger("qfnb.local.engines")

_T = TypeVar("_T")

#: body fields that constrain decoding by a grammar: a request with one is the suspect of a stuck loop
CONSTRAINED = ("json_schema", "grammar")
STALL_SETTING = "QFNB_ENGINE_STALL_SECONDS"
DEADLINE_SETTING = "QFNB_ENGINE_REQUEST_SECONDS"
#: the most the stall limit stretches on a loaded machine
MAX_LOAD_STRETCH = 8.0
#: the longest a stream's limits go unchecked (seconds): the deadline follows the load as it moves
CHECK_SECONDS = 1.0


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


def _next_check(now: float) -> float:
    """The next whole :data:`CHECK_SECONDS` of the loop's clock after ``now``: the streams under way are
    checked together, in one wake of the loop, not each at its own time."""
    return (now // CHECK_SECONDS + 1) * CHECK_SECONDS


class _Limits:
    """The limits of one send, read in the caller's own task: per token only the time of the last progress;
    a timer checks them (at the next limit, at least every whole :data:`CHECK_SECONDS`). Past one, the read
    under way is cancelled (closing the connection cancels the engine's slot) and :class:`_Expired` raised
    in its place; the caller's own cancellation always goes through. ``used``: the compute time the send
    has had (wall time divided by the load then: :func:`load_stretch`)."""

    def __init__(self, watch: Watch) -> None:
        self.watch, self.loop = watch, asyncio.get_running_loop()
        self.used, self.ticked = 0.0, self.loop.time()
        self.task: asyncio.Task[Any] | None = None  # the task reading now
        self.last = self.loop.time()  # the last progress seen, or the read's start (the caller's time is no stall)
        self.reading = False
        self.expired: _Expired | None = None
        self.cut = False  # the timer cancelled the read under way
        self.cancelling = 0  # the task's cancellations asked before the read under way
        self.timer = self.loop.call_at(min(self.last + watch.stall_seconds, _next_check(self.last)), self.check)

    def beat(self) -> None:
        self.last = self.loop.time()

    def check(self) -> None:
        """The limits now (the machine's load read again): expired, or checked again later."""
        stretch, now = load_stretch(), self.loop.time()
        self.used += (now - self.ticked) / stretch  # compute time, at this load
        self.ticked, stall = now, self.watch.stall_seconds * stretch
        left = self.watch.request_seconds - self.used
        stall_at, deadline = (self.last if self.reading else now) + stall, now + max(0.0, left) * stretch
        if now >= deadline or now >= stall_at:
            self.expired = _Expired("deadline" if now >= deadline else "stall", stall, stretch)
            if self.reading and self.task is not None:
                self.cut = True
                self.task.cancel()
            return
        self.timer = self.loop.call_at(min(stall_at, deadline, _next_check(now)), self.check)

    async def read(self, stream: AsyncIterator[Delta]) -> Delta | None:
        """The stream's next Delta (None: it ended), or :class:`_Expired`."""
        return await self.wait(anext(stream, None))

    async def wait(self, step: Awaitable[_T]) -> _T:
        """What ``step`` gives (a stream's next piece, a whole answer), or :class:`_Expired`."""
        if self.expired is not None:
            raise self.expired
        self.last = max(self.last, self.loop.time())
        self.task = asyncio.current_task()  # a stream's reads may move to another task (a response's own)
        self.cancelling = self.task.cancelling() if self.task is not None else 0
        self.reading = True
        try:
            return await step
        except asyncio.CancelledError:
            if self.cut and self.expired is not None and self.task is not None \
                    and self.task.uncancel() <= self.cancelling:
                raise self.expired from None
            raise
        finally:
            self.reading = False

    def stop(self) -> None:
        self.timer.cancel()


async def _attempt(name: str, target: Endpoint, path: str, body: dict[str, Any], watch: Watch) -> AsyncIterator[Delta]:
    """One send of ``body``: its Deltas as they come, read under its :class:`_Limits` (its deadline
    counts its own compute: a send again after a restart starts afresh, the time lost was not its own)."""
    limits = _Limits(watch)
    stream = transport.stream(name, target, path, body, beat=limits.beat)
    try:
        while (delta := await limits.read(stream)) is not None:
            yield delta
    finally:
        limits.stop()
        await aclose(stream)


def _continued(body: dict[str, Any], written: str, done: int) -> dict[str, Any]:
    """``body`` sent again after ``written`` (``done`` tokens) was streamed: the text so far after
    the prompt (llama-server reads a list of token ids and strings as one prompt; a chat's turns end
    with it as the assistant's), the rest of ``max_tokens`` left to write."""
    if not written:
        return body
    if "input_prefix" in body:  # a fill in the middle: the text so far ends the prefix, the suffix stays
        return {**body, "input_prefix": f"{body['input_prefix']}{written}", "n_predict": int(body["n_predict"]) - done}
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


async def _go_again(name: str, failed: _Expired | EngineUnavailable, watch: Watch, slot: int | None, *,
                    constrained: bool, again: bool, so_far: str) -> None:
    """After a send failed (a limit passed, or the engine broke under it): raise its caller's error, or return
    when the engine was restarted under it (as stuck, for this request or another) and it may go ``again``."""
    if isinstance(failed, _Expired):
        await _judge(name, failed, watch, slot, constrained=constrained, again=again, so_far=so_far)
    elif not again or not await asyncio.to_thread(watch.unstick, slot, load_stretch()):
        raise failed
    log.warning("%s: the engine was restarted under a request that held it: sending this one again", name)


async def _renew(watch: Watch, renewed: Endpoint | None) -> Endpoint:
    """The restarted engine leased for a send again (the lease of the one before it released)."""
    release(renewed)
    return await asyncio.to_thread(watch.renew)


def release(lease: Endpoint | None) -> None:
    """An engine's lease given back (None: there is none to give)."""
    if lease is not None and lease.release is not None:
        lease.release()


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
        self.pieces: list[str] = []  # the text written, joined only for a continuation (rare)
        self.done = 0
        self.base: int | None = None  # tokens written before the send under way (None: the first send)

    def resume(self) -> bool:
        """A send again: True when it goes on after text already written (a continuation)."""
        self.base = self.done if any(self.pieces) else None
        return self.base is not None

    def add(self, delta: Delta) -> Delta:
        if self.base is not None:  # a continuation's counts start after what was written
            delta = dataclasses.replace(delta, prompt_tokens=self.prompt,
                                        completion_tokens=self.base + delta.completion_tokens)
        else:
            self.prompt = max(self.prompt, delta.prompt_tokens)
        self.pieces.append(delta.text)
        if delta.completion_tokens > self.done:
            self.done = delta.completion_tokens
        return delta


async def _counted(name: str, target: Endpoint, text: str) -> int:
    """The tokens of a prompt sent as text, counted by the engine at ``target`` (a continuation's
    usage names the first send's prompt, which that send had not yet reported)."""
    try:
        return len(await prompts.tokenize(transport.client(), target.base_url, target.headers, text))
    except httpx.HTTPError as exc:
        raise EngineUnavailable(f"{name}: the engine at {target.base_url} could not count the prompt "
                                f"({type(exc).__name__})") from exc


def guarded(name: str, target: Endpoint, path: str, body: dict[str, Any]) -> AsyncIterator[Delta]:
    """``body`` streamed from ``path`` of the engine at ``target`` under its watch (see the module doc)."""
    if target.watch is None:
        return transport.stream(name, target, path, body)
    return _watched(name, target, target.watch, path, body)


async def _watched(name: str, target: Endpoint, watch: Watch, path: str, body: dict[str, Any]) -> AsyncIterator[Delta]:
    sent_at = asyncio.get_running_loop().time()
    constrained = any(body.get(k) for k in CONSTRAINED)
    slot = body.get("id_slot")
    sent: dict[str, Any] = {**body, "return_progress": True}  # prompt chunks read count as progress
    answer = _Answer(body)
    current, renewed = target, None
    first: float | None = None  # when its first token came
    try:
        for again in (True, False):
            try:
                async for delta in _attempt(name, current, path, sent, watch):
                    first = first if first is not None else asyncio.get_running_loop().time()
                    yield answer.add(delta)
                return
            except (_Expired, EngineUnavailable) as failed:  # a limit passed, or the stream broke
                done = so_far(sent_at, first, asyncio.get_running_loop().time(), answer.done)
                await _go_again(name, failed, watch, slot, constrained=constrained, again=again, so_far=done)
            current = renewed = await _renew(watch, renewed)
            if not answer.prompt and isinstance(body.get("prompt"), str):  # a short text sent as it is
                answer.prompt = await _counted(name, current, body["prompt"])
            sent = _continued(sent, "".join(answer.pieces), answer.done)
            answer.resume()
            if int(sent.get("max_tokens", sent.get("n_predict", 1))) < 1:  # nothing left to write
                yield Delta("", FINISH_LENGTH, answer.prompt, answer.done)
                return
    finally:
        release(renewed)


async def guarded_reply(name: str, target: Endpoint, path: str,
                        body: dict[str, Any]) -> tuple[dict[str, Any], Endpoint | None]:
    """``body`` POSTed to ``path`` of the engine at ``target`` (``/completion``: a token's score), its whole JSON
    answer, under the watch a stream has (the compute deadline and the stall limit, the engine asked to obey
    or restarted) and sent again, once, to an engine restarted under it; with that engine's lease, which the
    caller then holds (its next calls go there; None: ``target`` answered)."""
    if target.watch is None:
        return await transport.post_json(name, target, prompts.engine_root(target.base_url) + path, body), None
    return await _watched_reply(name, target, target.watch, path, body)


async def _watched_reply(name: str, target: Endpoint, watch: Watch, path: str,
                         body: dict[str, Any]) -> tuple[dict[str, Any], Endpoint | None]:
    sent_at = asyncio.get_running_loop().time()
    constrained, slot = any(body.get(k) for k in CONSTRAINED), body.get("id_slot")
    current, renewed = target, None
    try:
        for again in (True, False):
            limits = _Limits(watch)
            try:
                url = prompts.engine_root(current.base_url) + path
                return await limits.wait(transport.post_json(name, current, url, body)), renewed
            except (_Expired, EngineUnavailable) as failed:
                done = so_far(sent_at, None, asyncio.get_running_loop().time(), 0)
                await _go_again(name, failed, watch, slot, constrained=constrained, again=again, so_far=done)
            finally:
                limits.stop()
            current = renewed = await _renew(watch, renewed)
        raise AssertionError("unreachable: the second send returns or raises")
    except BaseException:
        release(renewed)
        raise

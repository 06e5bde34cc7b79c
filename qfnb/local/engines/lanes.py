"""Fair admission for serving engines: an interactive lane ahead of batch traffic.

A request is *batch* when its client says so (``X-Qfnb-Priority: batch``: qfnb marks its
``batch_do`` calls) and *interactive* otherwise (``do``, streams, magics, other clients). A
:class:`LaneGate` admits ``slots + queue`` requests, of which batch traffic may hold all but
``reserve``; it lets ``slots`` requests run on the engine at once, plus ``spare`` more that only
interactive requests may use (the engine is started with ``slots + spare`` slots), and a waiting
interactive request always runs before a waiting batch one. So an interactive call beside a
batch that saturates the engine is admitted, and runs at once on a spare slot.

Requests may name a *group*: the adapter set an engine runs them with (llama-server batches only
the requests of one adapter set, the set of its lowest busy slot, so a request for another adapter
would wait as long as lower slots stream back to back). Requests of one group run side by side; a
request of another group waits, in its lane's order, until the running ones finish, and requests
arriving after it wait behind it. A turn taken inside another turn of the same task (a call
written again under its grammar while the first answer is still open) skips that wait.

A request with a ``seed`` takes a turn like any other: the platform's build of llama-server computes
every batch holding one with batch-invariant kernels (scripts/llama_server_seed_invariant.patch), so
its answer does not depend on what else runs (:mod:`.llama.engine`).

``Retry-After`` on a refusal is estimated from the rate at which admitted requests finish (one
place frees per finish), instead of a fixed second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar

from qfnb.local.engines.ask import BATCH, INTERACTIVE
from qfnb.local.engines.call_state import progress
from qfnb.local.engines.gate import Gate, settle

#: the priority of the request being served (set by the routes from ``X-Qfnb-Priority``)
priority: ContextVar[str] = ContextVar("qfnb_request_priority", default=INTERACTIVE)

#: conversations whose slot the gate remembers (the oldest is forgotten first)
MAX_HOMES = 256
#: the longest Retry-After the platform asks for (seconds)
MAX_RETRY_AFTER = 120.0


def spare_slots(slots: int) -> int:
    """Engine slots kept for interactive requests beside ``slots`` batch-usable ones."""
    return max(1, slots // 4)


class _Waiter:
    __slots__ = ("batch", "future", "granted", "group", "key", "long", "loop", "slot")

    def __init__(self, batch: bool, long: bool, loop: asyncio.AbstractEventLoop, key: str | None = None,
                 group: str | None = None) -> None:
        self.batch, self.long, self.loop, self.granted, self.key = batch, long, loop, False, key
        self.group = group
        self.slot: int | None = None
        self.future: asyncio.Future[None] = loop.create_future()


class LaneGate(Gate):
    """A :class:`Gate` with an interactive lane (see the module doc); thread-safe, any event loop."""

    def __init__(self, name: str, slots: int, queue: int, *, spare: int | None = None,
                 reserve: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, slots, queue)
        self.spare = spare_slots(slots) if spare is None else spare
        places = slots + queue
        self.reserve = (max(1, places // 8) if places >= 4 else 0) if reserve is None else reserve
        self._clock = clock
        self._running = self._running_batch = 0
        self._free = set(range(slots + self.spare))  # engine slot ids (llama-server's id_slot)
        #: conversation (cache key) -> the slot that last served it, most recent last
        self._homes: OrderedDict[str, int] = OrderedDict()
        self._waiting: deque[_Waiter] = deque()
        #: the group of the running requests and how many run (no group: None)
        self._group: str | None = None
        #: the tasks holding a turn, and how many each holds (a nested turn skips the group's wait)
        self._holders: dict[asyncio.Task[object], int] = {}
        self._finished: deque[float] = deque(maxlen=32)
        self._cond_lock = threading.Lock()

    @property
    def busy(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return max(0, self._admitted - self.busy)

    def retry_after(self) -> float:
        """Seconds until a place is likely to free: one over the recent finishing rate (1 s when
        nothing finished yet), at most :data:`MAX_RETRY_AFTER`."""
        with self._cond_lock:
            done = list(self._finished)
        if len(done) < 2:
            return 1.0
        span = max(self._clock() - done[0], done[-1] - done[0])
        rate = (len(done) - 1) / span if span > 0 else float("inf")
        return min(MAX_RETRY_AFTER, max(1.0, 1.0 / rate if rate > 0 else MAX_RETRY_AFTER))

    @contextlib.asynccontextmanager
    async def turn(self, lane: str | None = None, *, long: bool = False, key: str | None = None,
                   group: str | None = None) -> AsyncIterator[int]:
        """Admit one request of ``lane`` (default: the request's :data:`priority`) and ``group``
        (its adapter set), wait for its turn to run, and hold its place until the block ends;
        EngineBusy when it cannot be admitted.

        Yields the engine slot to run on: the lowest free one for a short interactive request,
        the highest for a ``long`` prompt or batch traffic (the engine serves low slots first)."""
        batch = (lane or priority.get()) == BATCH
        task = asyncio.current_task()
        cap = self.slots + self.queue - (self.reserve if batch else 0)
        with self.admit(cap, self.retry_after):
            slot = await self._wait_turn(batch, long, key, group, nested=task in self._holders)
            if task is not None:
                with self._cond_lock:
                    self._holders[task] = self._holders.get(task, 0) + 1
            try:
                yield slot
            finally:
                if task is not None:
                    with self._cond_lock:
                        held = self._holders.pop(task) - 1
                        if held:
                            self._holders[task] = held
                self._leave(batch, slot)

    async def _queued(self, waiter: _Waiter, leave: Callable[[], None]) -> None:
        """Wait in line until ``waiter`` is granted its turn, the call's progress told (queued, then
        on a slot); cancelled, it leaves the line, or hands on (``leave()``) a turn granted meanwhile."""
        call = progress.current()
        if call is not None:
            call.queued()
        try:
            await waiter.future
        except BaseException:
            with self._cond_lock:
                granted = waiter.granted
                if not granted:
                    self._waiting.remove(waiter)
            if granted:
                leave()
            raise
        if call is not None:
            call.on_slot()

    def _can_run(self, batch: bool, group: str | None = None, nested: bool = False) -> bool:
        if self._running >= self.slots + self.spare:
            return False
        if self._running and group != self._group and not nested:
            return False
        return not batch or self._running_batch < self.slots

    def _start(self, batch: bool, long: bool, key: str | None = None, group: str | None = None) -> int:
        """Take a free slot: the one that last served ``key`` (a conversation: its prefix is still
        there), else one that is no conversation's home (the lowest for a short interactive request,
        the highest for a long prompt or batch traffic)."""
        if not self._running:
            self._group = group
        self._running += 1
        self._running_batch += batch
        home = self._homes.get(key) if key is not None else None
        if home is not None and home in self._free:
            slot = home
        else:
            spare = self._free - set(self._homes.values()) or self._free
            slot = max(spare) if (batch or long) else min(spare)
        self._free.discard(slot)
        if key is not None:
            self._homes[key] = slot
            self._homes.move_to_end(key)
            while len(self._homes) > MAX_HOMES:
                self._homes.popitem(last=False)
        return slot

    async def _wait_turn(self, batch: bool, long: bool, key: str | None = None, group: str | None = None, *,
                         nested: bool = False) -> int:
        loop = asyncio.get_running_loop()
        with self._cond_lock:
            # FIFO within a lane, interactive before batch: go now only if nobody it yields to waits
            # (a nested turn waits for a slot only: what waits behind its group waits for it too)
            ahead = not nested and (bool(self._waiting) if batch else any(not w.batch for w in self._waiting))
            if not ahead and self._can_run(batch, group, nested):
                return self._start(batch, long, key, group)
            waiter = _Waiter(batch, long, loop, key, group)
            self._waiting.append(waiter)

        def leave() -> None:
            assert waiter.slot is not None
            self._leave(batch, waiter.slot)

        await self._queued(waiter, leave)
        assert waiter.slot is not None
        return waiter.slot

    def _leave(self, batch: bool, slot: int) -> None:
        with self._cond_lock:
            self._vacate(batch, slot)
            self._finished.append(self._clock())
            self._grant()

    def _vacate(self, batch: bool, slot: int) -> None:
        """Give a turn's slot back (under the lock)."""
        self._running -= 1
        self._running_batch -= batch
        self._free.add(slot)

    def _grant(self) -> None:
        """Start waiters that may run now: interactive ones first, then batch ones, oldest first,
        up to the first that may not (no slot, or another group runs: the ones behind it wait too)."""
        for waiter in sorted(self._waiting, key=lambda w: w.batch):  # stable: oldest first in each lane
            if not self._can_run(waiter.batch, waiter.group):
                break
            self._waiting.remove(waiter)
            waiter.granted = True
            waiter.slot = self._start(waiter.batch, waiter.long, waiter.key, waiter.group)
            try:
                waiter.loop.call_soon_threadsafe(settle, waiter.future, None, None)
            except RuntimeError:  # its event loop is gone: nobody waits any more
                waiter.granted = False
                self._vacate(waiter.batch, waiter.slot)

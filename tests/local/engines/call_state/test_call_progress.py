"""A keyed call's progress as the engines mark it: queued at a full gate, then on a slot; loading
while its model starts; its tokens read from the answer when asked; the sentence both sides say."""

from __future__ import annotations

import asyncio

from qfnb.local.engines.call_state import progress
from qfnb.local.engines.call_state.progress import CallProgress
from qfnb.local.engines.lanes import LaneGate
from qfnb.protocol.wires.local.call_progress import describe


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_call_waiting_for_a_slot_is_queued_then_generating() -> None:
    async def main() -> tuple[dict[str, object], dict[str, object]]:
        gate = LaneGate("m", 1, 4, spare=0)
        clock = Clock()
        call = CallProgress(clock)
        holding = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with gate.turn():
                holding.set()
                await release.wait()

        async def second() -> None:
            progress.bind(call)
            async with gate.turn():
                clock.now += 2.0  # two seconds on its slot
                call.follow(lambda: 7)

        one = asyncio.ensure_future(first())
        await holding.wait()
        two = asyncio.ensure_future(second())
        await asyncio.sleep(0.01)
        clock.now += 40.0  # forty seconds in the queue
        queued = call.snapshot()
        release.set()
        await asyncio.gather(one, two)
        return queued, call.snapshot()

    queued, after = asyncio.run(main())
    assert queued["phase"] == "queued" and queued["queuedSeconds"] == 40.0 and queued["tokens"] == 0
    assert after["phase"] == "generating" and after["queuedSeconds"] == 40.0
    assert after["generatingSeconds"] == 2.0 and after["tokens"] == 7 and after["elapsedSeconds"] == 42.0
    assert describe(after) == "generating: 7 tokens in 2 s after 40 s queued"


def test_loading_counts_its_seconds_and_goes_back_to_the_phase_before() -> None:
    clock = Clock()
    call = CallProgress(clock)
    assert progress.current() is None
    with progress.loading():  # no keyed call in this context: nothing is marked
        pass
    token = progress._current.set(call)
    try:
        with progress.loading():
            clock.now += 12.0
            assert call.snapshot()["phase"] == "loading"
            assert describe(call.snapshot()) == "loading for 12 s of 12 s"
        assert call.phase == "received" and call.loading_s == 12.0
        call.on_slot()
        pieces = ["a", "b"]
        call.follow(lambda: len(pieces))
        clock.now += 3.0
        call.end(failed=False)
        pieces.append("c")  # read no more after its end: the count was kept, the answer's pieces let go
        clock.now += 50.0  # an ended call's figures stay as they were at its end
        done = call.snapshot()
    finally:
        progress._current.reset(token)
    assert done == {"phase": "done", "elapsedSeconds": 15.0, "loadingSeconds": 12.0, "queuedSeconds": 0.0,
                    "generatingSeconds": 3.0, "tokens": 2}
    assert describe(done) == "done: 2 tokens in 15 s after 12 s loading its model"
    assert describe({"phase": "received", "elapsedSeconds": 0.2}) == "received 0 s ago, not yet at an engine"

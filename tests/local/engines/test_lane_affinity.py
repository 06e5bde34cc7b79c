"""A conversation's turns run on the engine slot that holds its prefix (LaneGate's cache key), so
llama-server's prompt cache serves a Responses chain's history; requests without a key leave
conversations' slots alone while another is free."""

from __future__ import annotations

from qfnb.local.engines.lanes import LaneGate


async def test_a_conversation_comes_back_to_its_slot() -> None:
    gate = LaneGate("m", slots=4, queue=4, spare=0)
    async with gate.turn(key="resp_a") as first:
        pass
    async with gate.turn(long=True) as other:  # a long prompt would take the highest slot anyway
        assert other != first
        async with gate.turn() as short:  # a short one takes the lowest free slot that is no one's home
            assert short != first
    async with gate.turn(key="resp_b") as second:
        assert second != first
        async with gate.turn(long=True, key="resp_a") as again:  # a long turn still goes home
            assert again == first
    async with gate.turn(key="resp_b") as back:
        assert back == second


async def test_a_request_for_another_adapter_is_not_starved_by_back_to_back_base_requests() -> None:
    """llama-server runs one adapter set at a time (the lowest busy slot's): the gate runs one group
    at a time, and base requests arriving after an adapter request wait behind it."""
    import asyncio

    gate = LaneGate("m", slots=2, queue=8, spare=0)
    order: list[str] = []
    release = {name: asyncio.Event() for name in ("base1", "base2", "adapter", "base3")}

    async def run(name: str, group: str | None) -> None:
        async with gate.turn(group=group):
            order.append(f"start {name}")
            await release[name].wait()
        order.append(f"end {name}")

    first = asyncio.create_task(run("base1", None))
    await asyncio.sleep(0)
    adapter = asyncio.create_task(run("adapter", "/ckpt/step-8"))
    await asyncio.sleep(0)
    later = asyncio.create_task(run("base2", None))  # a slot is free, but the adapter request waits first
    await asyncio.sleep(0.01)
    assert order == ["start base1"] and gate.queued == 2
    release["base1"].set()
    await asyncio.sleep(0.01)
    assert order == ["start base1", "end base1", "start adapter"]  # base2 still waits: another group runs
    release["adapter"].set()
    release["base2"].set()
    await asyncio.gather(first, adapter, later)
    assert order[3:] == ["end adapter", "start base2", "end base2"]


async def test_one_groups_requests_run_side_by_side_and_a_nested_turn_skips_the_queue() -> None:
    """Requests of one adapter set share the slots; a turn taken inside a turn of the same task (a
    call written again under its grammar) does not wait behind a request of another group."""
    import asyncio

    gate = LaneGate("m", slots=2, queue=8, spare=0)
    async with gate.turn(group="a"), gate.turn(group="a"):
        assert gate.busy == 2
    waiting = asyncio.Event()

    async def other() -> None:
        waiting.set()
        async with gate.turn(group="b"):
            pass

    async with gate.turn() as outer:
        blocked = asyncio.create_task(other())
        await waiting.wait()
        await asyncio.sleep(0)
        assert gate.queued == 1
        async with asyncio.timeout(2):
            async with gate.turn() as inner:  # would deadlock if it queued behind group b
                assert inner != outer
    await asyncio.wait_for(blocked, 2)
    assert gate.busy == 0 and gate.queued == 0


async def test_seeded_turns_run_one_at_a_time_on_the_solo_engine_beside_the_others() -> None:
    """An exclusive turn (a seeded request) takes the solo engine's one slot (slot 0 of its own
    process): it neither waits for the requests on the main engine nor holds them up, and seeded
    turns run one after another in arrival order."""
    import asyncio

    gate = LaneGate("m", slots=2, queue=8, spare=0)
    order: list[str] = []
    release = {name: asyncio.Event() for name in ("a", "b", "seeded1", "seeded2", "c")}

    async def run(name: str, exclusive: bool = False) -> None:
        async with gate.turn(exclusive=exclusive) as slot:
            order.append(f"start {name} on {slot}")
            await release[name].wait()
        order.append(f"end {name}")

    tasks = [asyncio.create_task(run("a")), asyncio.create_task(run("b"))]
    await asyncio.sleep(0.01)
    assert gate.busy == 2  # the main engine's slots are all taken
    tasks.append(asyncio.create_task(run("seeded1", exclusive=True)))
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(run("seeded2", exclusive=True)))
    tasks.append(asyncio.create_task(run("c")))
    await asyncio.sleep(0.01)
    assert "start seeded1 on 0" in order and gate.busy == 3 and gate.queued == 2  # seeded2 and c wait
    release["a"].set()
    await asyncio.sleep(0.01)
    assert order[-1].startswith("start c")  # c took a's slot while seeded1 still runs
    assert not any(o.startswith("start seeded2") for o in order)
    release["seeded1"].set()
    await asyncio.sleep(0.01)
    assert order.index("end seeded1") < order.index("start seeded2 on 0")
    for event in release.values():
        event.set()
    await asyncio.gather(*tasks)
    assert gate.busy == 0 and gate.queued == 0


async def test_a_cancelled_seeded_turn_hands_the_solo_slot_on() -> None:
    import asyncio

    gate = LaneGate("m", slots=1, queue=8, spare=0)
    hold, got = asyncio.Event(), []

    async def seeded(name: str) -> None:
        async with gate.turn(exclusive=True):
            got.append(name)
            await hold.wait()

    first = asyncio.create_task(seeded("first"))
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(seeded("cancelled"))
    last = asyncio.create_task(seeded("last"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    hold.set()
    await asyncio.gather(first, last)
    assert got == ["first", "last"] and waiting.cancelled() and gate.busy == 0

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


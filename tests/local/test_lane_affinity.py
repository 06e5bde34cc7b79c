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

"""Issue 26 (item 4): interactive calls go ahead of batch traffic, and ``Retry-After`` is
estimated from how fast admitted requests finish.

The lane logic is checked with virtual time and event order; then an interactive stream is sent
beside a ``batch_do`` that saturates an engine (a test double that streams like llama-server).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fake_openai_engine import FakeEngine
from fakes.cloud import serve
from platform_helpers import CREDS, make_settings

from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.lanes import BATCH, INTERACTIVE, LaneGate
from qfnb.local.engines.registry import EngineOptions, EngineRegistry, parse_external
from qfnb.local.server.app import create_app

pytestmark = pytest.mark.serial  # wall-clock latency under load: run alone (scripts/test.sh)


def test_batch_traffic_leaves_places_and_slots_to_interactive_calls() -> None:
    assert LaneGate("m", slots=2, queue=6).reserve == 1
    gate = LaneGate("m", slots=2, queue=6, reserve=2)  # 8 places, 2 kept for interactive; 2 slots + 1 spare
    assert gate.spare == 1
    order: list[str] = []

    async def hold(lane: str, tag: str, release: asyncio.Event) -> None:
        async with gate.turn(lane):
            order.append(tag)
            await release.wait()

    async def main() -> None:
        release = asyncio.Event()
        batch = [asyncio.ensure_future(hold(BATCH, f"b{i}", release)) for i in range(6)]
        await asyncio.sleep(0)
        assert order == ["b0", "b1"] and gate.busy == 2 and gate.queued == 4  # batch runs on 2 slots
        with pytest.raises(EngineBusy):  # the last 2 places are the interactive reserve
            async with gate.turn(BATCH):
                pass
        interactive = asyncio.ensure_future(hold(INTERACTIVE, "i0", release))
        await asyncio.sleep(0)
        assert order[-1] == "i0"  # admitted, and running at once on the spare slot
        late = asyncio.ensure_future(hold(INTERACTIVE, "i1", release))  # no slot left: waits...
        await asyncio.sleep(0)
        assert "i1" not in order
        release.set()
        await asyncio.gather(*batch, interactive, late)
        assert order.index("i1") < order.index("b2")  # ...but runs before every waiting batch call

    asyncio.run(main())
    assert gate.busy == 0 and gate.admitted == 0


def test_a_cancelled_waiter_gives_back_its_place() -> None:
    gate = LaneGate("m", slots=1, queue=2, spare=0)

    async def main() -> None:
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.turn(BATCH):
                await release.wait()

        first = asyncio.ensure_future(hold())
        waiting = asyncio.ensure_future(hold())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert gate.admitted == 1
        release.set()
        await first

    asyncio.run(main())
    assert gate.admitted == 0 and gate.busy == 0


def test_retry_after_follows_the_drain_rate() -> None:
    now = [0.0]
    gate = LaneGate("m", slots=1, queue=0, spare=0, reserve=0, clock=lambda: now[0])

    async def finish_one() -> None:
        async with gate.turn(INTERACTIVE):
            pass

    assert gate.retry_after() == 1.0  # nothing finished yet
    for _ in range(5):
        asyncio.run(finish_one())
        now[0] += 8.0  # one request finishes every 8 s
    assert gate.retry_after() == pytest.approx(10.0)  # 4 gaps over 40 s: 0.1 finishes a second

    async def refused() -> float:
        async with gate.turn(INTERACTIVE):
            try:
                async with gate.turn(INTERACTIVE):
                    pass
            except EngineBusy as exc:
                return exc.retry_after
        raise AssertionError("the second call was admitted")

    assert asyncio.run(refused()) == pytest.approx(10.0)


def test_an_interactive_stream_beside_a_saturating_batch(tmp_path: Path) -> None:
    from qfnb._core.config import Config
    from qfnb.resources.inference.chat import ChatCompletion

    fake = FakeEngine(tokens=8, delay=0.03)
    external = parse_external({"Ext-Chat": {"base_url": "http://x/v1", "model": "remote"}})
    with serve(fake.app) as engine_url:
        external = parse_external({"Ext-Chat": {"base_url": engine_url + "/v1", "model": "remote"}})
        registry = EngineRegistry(tmp_path, options=EngineOptions(slots=2, queue=6, external=external))
        with serve(create_app(make_settings(tmp_path), registry), lifespan="on") as base:
            config = Config.from_env({}, base_url=base, console_api_base_url=base, iam_base_url=base,
                                     ak=CREDS.api_key, sk=CREDS.secret_key, access_key=CREDS.access_key,
                                     secret_key=CREDS.iam_secret_key, embedded=True)
            chat = ChatCompletion(endpoint="ext_chat", config=config)
            # 30 calls of 0.24 s on 2 slots: 26 still to answer when the stream is sent, the engine
            # admits 8 (60 calls only made the wait for the batch's end twice as long)
            prompts = [[{"role": "user", "content": f"p{i}"}] for i in range(30)]
            batch = chat.batch_do(prompts, worker_num=16)  # more than the engine admits: it saturates
            while batch.finished_count() < 4:
                threading.Event().wait(0.02)
            sent_at = batch.finished_count()
            first_at: list[int] = []
            text = []
            for chunk in chat.do([{"role": "user", "content": "hello"}], stream=True):
                if not first_at:
                    first_at.append(batch.finished_count())
                text.append(chunk["result"])
            results: list[Any] = list(batch.results())
    assert "".join(text) == "w0 w1 w2 w3 w4 w5 w6 w7"
    # its first token came while at most a couple of batch calls finished: it did not queue behind
    # the batch (the engine admits 8, so behind the queue it would wait for 6 or more)
    assert first_at[0] - sent_at <= 2, (sent_at, first_at)
    assert len(results) == 30 and all(isinstance(r, dict) or hasattr(r, "body") for r in results)
    assert all("w0 w1" in str(r["result"] if isinstance(r, dict) else r.body["result"]) for r in results)

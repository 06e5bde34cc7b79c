"""A seeded request on the platform's own engine shares the batch with the others (the build computes
such batches with batch-invariant kernels: scripts/llama_server_seed_invariant.patch): no request
waits for it, and it waits for none. The engine is an in-process llama-server double (httpx's
MockTransport) that records the completions it was asked for and how many ran at once."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint


class Engine:
    """The double: its completions' bodies, and the most that ran at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.completions: list[dict[str, object]] = []
        self.running = self.most_at_once = 0
        self.released = 0
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.answer))
        monkeypatch.setattr(transport, "client", lambda: client)

    async def answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/apply-template":
            return httpx.Response(200, json={"prompt": " ".join(str(m["content"]) for m in body["messages"])})
        self.completions.append(body)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        events = [{"choices": [{"index": 0, "text": "Kepler's garden", "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 4, "completion_tokens": 3}}]
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, stream=httpx.ByteStream(sse.encode()), headers={"Content-Type": "text/event-stream"})

    def engine(self) -> LlamaEngine:
        def endpoint() -> Endpoint:
            return Endpoint("http://127.0.0.1:1/v1", "k", release=lambda: setattr(self, "released", self.released + 1))

        return LlamaEngine("tiny", endpoint, gate=LaneGate("tiny", 4, 8), n_ctx=4096)


def ask(seed: int | None) -> ChatAsk:
    return ChatAsk(model="tiny", messages=({"role": "user", "content": "Name a planet."},),
                   sampling=Sampling(temperature=0.9, seed=seed))


def run_all(engine: LlamaEngine, asks: list[ChatAsk]) -> list[str]:
    async def one(a: ChatAsk) -> str:
        return "".join([d.text async for d in engine.generate(a)])

    async def every() -> list[str]:
        return list(await asyncio.gather(*map(one, asks)))

    return asyncio.run(every())


def test_seeded_requests_share_the_batch_and_read_their_prompts_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(monkeypatch)
    texts = run_all(engine.engine(), [ask(7), ask(7), ask(None), ask(8)])
    assert texts == ["Kepler's garden"] * 4 and engine.released == 4
    assert engine.most_at_once == 4  # none waited for another: a seeded turn is a turn like any other
    seeded = [b for b in engine.completions if b.get("seed") is not None]
    assert sorted(b["seed"] for b in seeded) == [7, 7, 8]
    # a prefix reused from a request computed without the batch-invariant kernels would round differently
    assert [b["cache_prompt"] for b in engine.completions if b.get("seed") is None] == [True]
    assert not any(b["cache_prompt"] for b in seeded)
    assert sorted(b["id_slot"] for b in engine.completions) == [0, 1, 2, 3]

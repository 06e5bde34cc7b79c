"""Where a seeded request runs on the platform's own engine: on the main engine, batched with the
others, when its build computes such batches with batch-invariant kernels
(scripts/llama_server_seed_invariant.patch); else alone, one at a time, on the model's solo process.
The engines are in-process llama-server doubles (httpx's MockTransport) that record which process
each completion reached."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import transport
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.transport import Endpoint

MAIN, SOLO = "127.0.0.1:1", "127.0.0.1:2"


class Processes:
    """The main process and the solo one, as far as the engine sees them: leases taken and released,
    and the completions each one answered (host, body)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, invariant: bool) -> None:
        self.invariant = invariant
        self.leased = {MAIN: 0, SOLO: 0}
        self.released = {MAIN: 0, SOLO: 0}
        self.completions: list[tuple[str, dict[str, object]]] = []
        self.running = self.most_at_once = 0
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.answer))
        monkeypatch.setattr(transport, "client", lambda: client)

    def endpoint(self, host: str) -> Endpoint:
        self.leased[host] += 1
        # the solo process is the same build: it says the same about seeds
        return Endpoint(f"http://{host}/v1", "k", release=lambda: self.released.__setitem__(host, self.released[host] + 1),
                        seeds_invariant=self.invariant)

    async def answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": list(range(len(body["content"].split())))})
        if request.url.path == "/apply-template":
            return httpx.Response(200, json={"prompt": " ".join(str(m["content"]) for m in body["messages"])})
        self.completions.append((request.url.netloc.decode(), body))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        events = [{"choices": [{"index": 0, "text": "Kepler's garden", "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 4, "completion_tokens": 3}}]
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, stream=httpx.ByteStream(sse.encode()), headers={"Content-Type": "text/event-stream"})

    def engine(self) -> LlamaEngine:
        return LlamaEngine("tiny", lambda: self.endpoint(MAIN), gate=LaneGate("tiny", 4, 8), n_ctx=4096,
                           solo=lambda: self.endpoint(SOLO))


def ask(seed: int | None) -> ChatAsk:
    return ChatAsk(model="tiny", messages=({"role": "user", "content": "Name a planet."},),
                   sampling=Sampling(temperature=0.9, seed=seed))


def run_all(engine: LlamaEngine, asks: list[ChatAsk]) -> list[str]:
    async def one(a: ChatAsk) -> str:
        return "".join([d.text async for d in engine.generate(a)])

    async def every() -> list[str]:
        return list(await asyncio.gather(*map(one, asks)))

    return asyncio.run(every())


def test_an_invariant_build_batches_seeded_requests_with_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    procs = Processes(monkeypatch, invariant=True)
    texts = run_all(procs.engine(), [ask(7), ask(7), ask(None), ask(8)])
    assert texts == ["Kepler's garden"] * 4
    assert {host for host, _ in procs.completions} == {MAIN} and procs.leased[SOLO] == 0
    assert procs.most_at_once == 4  # none waited for another: the seeded ones are not exclusive turns
    # the seed reaches the engine, and a seeded request reads its whole prompt afresh
    seeded = [b for _, b in procs.completions if b.get("seed") is not None]
    assert sorted(b["seed"] for b in seeded) == [7, 7, 8] and not any(b["cache_prompt"] for b in seeded)
    assert procs.released == {MAIN: 4, SOLO: 0}


def test_without_it_a_seeded_request_runs_alone_on_the_solo_process(monkeypatch: pytest.MonkeyPatch) -> None:
    procs = Processes(monkeypatch, invariant=False)
    run_all(procs.engine(), [ask(7), ask(None), ask(8), ask(None)])
    hosts = {b.get("seed"): host for host, b in procs.completions}
    assert hosts == {7: SOLO, 8: SOLO, None: MAIN}
    # each seeded request leased the main process first, to ask it, and handed it back
    assert procs.leased == {MAIN: 4, SOLO: 2} and procs.released == procs.leased
    solo_slots = [b["id_slot"] for host, b in procs.completions if host == SOLO]
    assert solo_slots == [0, 0]  # one at a time, on the solo process's one slot

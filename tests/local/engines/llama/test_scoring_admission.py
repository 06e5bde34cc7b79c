"""Every call on our own llama-server passes the chat path's one admission step: token scoring takes a turn of
the gate and runs under the stall watchdog and compute deadline, sent again to an engine restarted under it; a
token count is the admission's preparation step (a broken engine is marked, and named)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from qfnb.local.engines.ask import TextAsk
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import watchdog
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint, Watch
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.engines.llama.watchdog import EngineStalled

TOKENS = [2, 10, 11, 12]
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits as on a machine with CPUs to spare (the suite's own load would stretch the stall)."""
    monkeypatch.setattr(watchdog, "load_stretch", lambda: 1.0)


def _answer(body: dict[str, Any]) -> httpx.Response:
    """The forced token, its log-probability -0.5 times the prompt's length."""
    token = body["logit_bias"][0][0]
    return httpx.Response(200, json={"tokens": [token], "completion_probabilities": [
        {"id": token, "logprob": -0.5 * len(body["prompt"]), "top_logprobs": []}]})


class _Engine:
    """A llama-server double behind a watched endpoint: ``stuck`` hosts never answer a ``/completion``; the
    watch records what the watchdog asked of it (``unstick``: True when it restarts the engine, on ``fresh``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, restarts: bool, stuck: frozenset[str]) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.unstuck: list[int | None] = []
        self.renewed = 0

        async def handler(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            self.sent.append((request.url.host, body))
            if request.url.host in stuck:
                await asyncio.sleep(3600)  # a decode loop held: no answer, until the watchdog closes it
            return _answer(body)

        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        monkeypatch.setattr(transport, "client", lambda: client)

        def unstick(slot: int | None, stretch: float) -> bool:
            self.unstuck.append(slot)
            return restarts

        def renew() -> Endpoint:
            self.renewed += 1
            return Endpoint("http://fresh/v1", watch=watch)

        watch = Watch(stall_seconds=0.3, request_seconds=60.0, unstick=unstick, renew=renew)
        self.target = Endpoint("http://held/v1", watch=watch)
        self.chat = LlamaEngine("tiny", lambda: self.target, gate=LaneGate("tiny", 2, 4), n_ctx=64)


def test_a_stalled_token_score_trips_the_watchdog_on_its_gate_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _Engine(monkeypatch, restarts=False, stuck=frozenset({"held"}))
    with pytest.raises(EngineStalled, match=r"no decode progress for 0\.3 s"):
        asyncio.run(asyncio.wait_for(engine.chat.token_logprobs(TOKENS, [3], spans=1), 10))
    [(host, body)] = engine.sent
    assert host == "held" and body["id_slot"] in range(4)  # a slot of the gate's turn
    assert engine.unstuck == [body["id_slot"]] and engine.renewed == 0  # that slot stopped; the engine serves on


def test_a_token_score_goes_on_at_an_engine_restarted_under_it(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _Engine(monkeypatch, restarts=True, stuck=frozenset({"held"}))
    assert asyncio.run(asyncio.wait_for(engine.chat.token_logprobs(TOKENS, [1, 3], spans=1), 10)) == [-0.5, -1.5]
    assert [host for host, _ in engine.sent] == ["held", "fresh", "fresh"]  # sent again, then the next position
    assert engine.renewed == 1 and len(engine.unstuck) == 1


def test_a_one_call_score_under_its_grammar_is_the_suspect_and_is_not_sent_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _Engine(monkeypatch, restarts=True, stuck=frozenset({"held"}))
    with pytest.raises(EngineStalled, match="under its JSON schema's grammar"):
        asyncio.run(asyncio.wait_for(engine.chat.forced_logprobs(TOKENS, 2), 10))
    assert [host for host, _ in engine.sent] == ["held"] and "grammar" in engine.sent[0][1]


def test_a_token_count_marks_an_engine_that_cannot_tokenize_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    monkeypatch.setattr(transport, "client", lambda: client)
    broken: list[bool] = []
    target = Endpoint("http://gone/v1", broken=lambda: broken.append(True))
    chat = LlamaEngine("tiny", lambda: target, gate=LaneGate("tiny", 2, 4), n_ctx=64)
    with pytest.raises(EngineUnavailable, match="could not prepare the prompt"):
        asyncio.run(chat.count_tokens(TextAsk(model="tiny", prompt="x" * 2000)))
    assert broken == [True]  # its lease is renewed, as a chat's preparation does

"""Issue 26 (item 1), on the real ``llama-server`` (marked ``real_model``): a long chat history
cannot hold the engine.

The prompt is rendered and tokenized once before it takes a slot; one that does not fit the
context is refused before any prefill, and while the longest history that fits is being
prefilled, a small request's first token arrives in the first third of that prefill (short
prompts run in low slots, which the engine serves first in every 64-token step).

Sized to stay short: the engine here has a 1,024-token context per slot (the product's is 4,096),
so "the longest history that fits" prefills in seconds rather than a minute; the mechanism is
the same at any size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from engine_asks import chat_ask

from qfnb.local.engines import DEFAULT_CHAT
from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.catalog import BUILTIN_SPECS
from qfnb.local.engines.gate import run_blocking
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry, endpoint_for

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]


def history(turns: int) -> list[dict[str, str]]:
    """``turns`` alternating one-word turns ending with the user's (about 6 tokens each)."""
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(turns)]
    return msgs if msgs[-1]["role"] == "user" else [*msgs, {"role": "user", "content": "hi"}]


#: the context per slot of the engine under test (tokens)
CONTEXT = 1024


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRegistry]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(BUILTIN_SPECS, DEFAULT_CHAT, replace(BUILTIN_SPECS[DEFAULT_CHAT], n_ctx=CONTEXT))
        reg = EngineRegistry(tmp_path_factory.mktemp("long-history"),
                             options=EngineOptions(slots=4, idle_seconds=600))
        try:
            yield reg
        finally:
            reg.close()


@pytest.fixture(scope="module")
def engine(registry: EngineRegistry) -> Any:
    return registry.chat(endpoint_for(DEFAULT_CHAT))


def slot_tasks(registry: EngineRegistry) -> list[tuple[int, Any]]:
    """Each llama-server slot's id and the id of the last task it took (llama-server's /slots)."""
    import httpx

    server = registry._servers[DEFAULT_CHAT]
    lease = server.acquire()
    server.release(lease)
    slots = httpx.get(lease.url + "/slots", headers={"Authorization": f"Bearer {lease.key}"}).json()
    return [(slot["id"], slot.get("id_task")) for slot in slots]


def run(engine: Any, messages: list[dict[str, str]], sampling: dict[str, Any]) -> tuple[float | None, list[Any]]:
    """Seconds to the first delta with text (None if none), and all deltas."""
    async def go() -> tuple[float | None, list[Any]]:
        start, first, out = time.monotonic(), None, []
        async for delta in engine.generate(chat_ask(messages, **sampling)):
            if first is None and delta.text:
                first = time.monotonic() - start
            out.append(delta)
        return first, out

    return run_blocking(go)


def test_a_history_beyond_the_context_is_refused_before_any_prefill(engine: Any, registry: EngineRegistry) -> None:
    run(engine, history(2), {"max_tokens": 2})  # the engine is up
    before = slot_tasks(registry)
    with pytest.raises(PromptTooLong, match="tokens"):
        run(engine, history(200), {"max_tokens": 2})  # about 1,220 tokens
    assert slot_tasks(registry) == before  # no slot took a task: nothing reached the engine to prefill


def test_a_small_request_is_answered_while_the_longest_history_is_prefilled(engine: Any) -> None:
    run(engine, history(2), {"max_tokens": 2})
    start = time.monotonic()
    _, alone = run(engine, history(40), {"max_tokens": 1})  # this machine's prefill speed, now
    rate = alone[-1].prompt_tokens / (time.monotonic() - start)
    long_done: list[Any] = []

    def long_request() -> None:  # about 950 tokens: the most that fits with room to answer
        begun = time.monotonic()
        result = run(engine, history(155), {"max_tokens": 2})
        long_done.append((begun, time.monotonic(), result))

    worker = threading.Thread(target=long_request)
    worker.start()
    time.sleep(0.15 * 0.8 * CONTEXT / rate)  # it is prefilling now (a sixth of the way in, at the rate just measured)
    sent = time.monotonic()
    first, _ = run(engine, [{"role": "user", "content": "Say hello"}], {"max_tokens": 3})
    worker.join(1200)
    assert first is not None and long_done
    begun, ended, (_, deltas) = long_done[0]
    assert deltas[-1].prompt_tokens > 0.8 * CONTEXT
    # the small request did not wait for the long prefill: it was answered in its first half
    assert sent + first < begun + (ended - begun) / 2, (sent - begun, first, ended - begun, rate)

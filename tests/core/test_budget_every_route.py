"""Every route reserves what it will really cost (issue 54): under a 100-token budget, 12 concurrent
calls of each route never spend more than 100 together, against the local platform's app (engine
doubles whose prompt count covers every turn the engine reads, as a real engine's does). On main a
Responses continuation reserved only its new input (2,506 tokens spent under 100) and a rerank
only its query (6,419)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import qfnb
from qfnb._core.record.budget import Budget, BudgetExceeded, budget
from qfnb.agents import mcp_server
from qfnb.agents.chat import run_tools
from tests.fakes.local_platform import FakeRegistry, ServedPlatform

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

from qfnb._core.runtime.openai_recorded import SyncRecordedTransport  # noqa: E402

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py

LIMIT, CALLS, CAP = 100, 12, 8
#: a stored response of about 1,200 tokens: 600 words in, their echo out
LONG = " ".join(f"w{i}" for i in range(600))
#: 8 documents of 2.7 kB each
DOCUMENTS = [("lorem ipsum dolor sit amet " * 100)[:2700]] * 8


FakeChat = importlib.import_module(FakeRegistry.__module__).FakeChat  # tests/local/platform_doubles.py


class EveryTurnChat(FakeChat):  # type: ignore[misc,valid-type]
    """:class:`FakeChat` counting every turn's words as its prompt (what a real engine prefills)."""

    def chat(self, messages: list[dict[str, str]], *, sampling: Any) -> Iterator[Any]:  # type: ignore[override]
        read = sum(len(str(m["content"]).split()) for m in messages)
        for delta in super().chat(messages, sampling=sampling):
            yield dataclasses.replace(delta, prompt_tokens=read)


@pytest.fixture
def platform(local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> ServedPlatform:
    local_platform.registry.engines["tiny-chat"] = EveryTurnChat("tiny-chat")
    local_platform.set_env(monkeypatch)  # the MCP tools and agents use the default client
    return local_platform


def _sdk(platform: ServedPlatform, api: str = "v1") -> Any:
    """The openai SDK over qfnb's recorded transport (what ``qfnb.openai_client()`` gives)."""
    transport = SyncRecordedTransport(platform.config())
    return openai.OpenAI(base_url=f"{platform.url}/{api}", api_key=platform.bearer_token(), max_retries=0,
                         http_client=openai.DefaultHttpxClient(transport=transport))


def _twelve(call: Callable[[int], Any]) -> tuple[Budget, list[Any]]:
    """``call(i)`` 12 times at once under a fresh 100-token budget; each result or error."""
    spend = budget(tokens=LIMIT)

    def one(i: int) -> Any:
        try:
            return call(i)
        except Exception as exc:  # a refusal is an outcome here
            return exc

    with ThreadPoolExecutor(CALLS) as pool:
        results = list(pool.map(one, range(CALLS)))
    assert spend.spent_tokens <= LIMIT and spend.reserved_tokens == 0, (spend, results)
    return spend, results


def _refused(result: Any) -> bool:
    return isinstance(result, BudgetExceeded) or (
        isinstance(result, openai.RateLimitError) and "budget" in str(result))


def _answered(results: list[Any]) -> list[Any]:
    assert all(_refused(r) for r in results if isinstance(r, Exception)), results
    return [r for r in results if not isinstance(r, Exception)]


def test_chat_stream_embeddings_batch_and_messages_hold(platform: ServedPlatform) -> None:
    cfg = platform.config()
    chat = qfnb.ChatCompletion(config=cfg, model="Tiny-Chat")
    ask = [{"role": "user", "content": "hello"}]
    _, results = _twelve(lambda i: chat.do(messages=ask, max_output_tokens=CAP))
    assert _answered(results)
    _, results = _twelve(lambda i: list(chat.do(messages=ask, max_output_tokens=CAP, stream=True)))
    assert _answered(results)
    embed = qfnb.Embedding(config=cfg, model="Tiny-Embed")
    _, results = _twelve(lambda i: embed.do(texts=[f"text {i}"] * 4))
    assert _answered(results)
    _, results = _twelve(lambda i: embed.do(texts=DOCUMENTS))  # each call's texts alone pass the budget
    assert not _answered(results)
    spend = budget(tokens=LIMIT)
    batch = chat.batch_do([ask] * CALLS, worker_num=CALLS, max_output_tokens=CAP).results()
    assert _answered(batch) and spend.spent_tokens <= LIMIT and spend.reserved_tokens == 0
    sdk = _sdk(platform)
    _, results = _twelve(lambda i: sdk.post("/messages", cast_to=object, body={
        "model": "tiny-chat", "max_tokens": CAP, "messages": ask}))
    assert _answered(results)


def test_rerank_holds_its_documents(platform: ServedPlatform) -> None:
    reranker = qfnb.Reranker(config=platform.config())
    spend, results = _twelve(lambda i: reranker.do(query="which one?", documents=DOCUMENTS))
    assert not _answered(results) and spend.spent_tokens == 0  # 8 x 2.7 kB never fit 100 tokens
    with_room = budget(tokens=100_000)
    reranker.do(query="which one?", documents=DOCUMENTS)
    assert with_room.spent_tokens > 0


def test_a_responses_continuation_holds_the_stored_conversation(platform: ServedPlatform) -> None:
    client = qfnb.Qianfan(config=platform.config())
    first = client.responses.create(model="tiny-chat", input=LONG)
    assert first["usage"]["input_tokens"] + first["usage"]["output_tokens"] > 1_000
    spend, results = _twelve(lambda i: client.responses.create(
        model="tiny-chat", input="again", previous_response_id=first["id"], max_output_tokens=CAP))
    assert not _answered(results) and spend.spent_tokens == 0
    assert "previous_response_id" not in str(results[0]) and "token budget" in str(results[0])
    _, results = _twelve(lambda i: client.responses.create(model="tiny-chat", input="hi", max_output_tokens=CAP))
    assert _answered(results)
    _, results = _twelve(lambda i: list(client.responses.create(model="tiny-chat", input="hi", stream=True,
                                                                max_output_tokens=CAP)))
    assert _answered(results)
    # with room, a continuation is held at no less than it spends
    held: list[int] = []
    with_room = budget(tokens=100_000)
    reserve = with_room.reserve
    with_room.reserve = lambda tokens, *a, **k: (held.append(tokens), reserve(tokens, *a, **k))[1]  # type: ignore[method-assign]
    client.responses.create(model="tiny-chat", input="again", previous_response_id=first["id"], max_output_tokens=CAP)
    assert held and held[0] >= with_room.spent_tokens > 1_000


def test_the_openai_face_holds_a_continuation_too(platform: ServedPlatform) -> None:
    sdk = _sdk(platform, "v2")
    first = sdk.responses.create(model="tiny-chat", input=LONG)
    spend, results = _twelve(lambda i: sdk.responses.create(
        model="tiny-chat", input="again", previous_response_id=first.id, max_output_tokens=CAP))
    assert not _answered(results) and spend.spent_tokens == 0


def test_mcp_tools_and_agent_loops_hold(platform: ServedPlatform) -> None:
    _, results = _twelve(lambda i: mcp_server.chat("hello", model="Tiny-Chat", max_tokens=CAP))
    assert _answered(results)
    spend, results = _twelve(lambda i: mcp_server.rerank("which one?", DOCUMENTS))
    assert not _answered(results) and spend.spent_tokens == 0

    def lookup(city: str) -> str:
        """Look a city up.

        Args:
            city: The city.
        """
        return city

    _, loops = _twelve(lambda i: run_tools("hello", [lookup], model="tiny-chat", sampling={"max_tokens": CAP}))
    assert all(_refused(loop.reply.error) for loop in loops if loop.reply.error is not None)
    _, loops = _twelve(lambda i: run_tools("hello", [], model="tiny-chat", sampling={"max_tokens": CAP}))
    assert any(loop.reply.error is None for loop in loops)

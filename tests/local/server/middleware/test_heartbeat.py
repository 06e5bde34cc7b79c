"""A call's timeout counts silence, not total time: the platform sends heartbeats while a slow
engine works (an SSE comment on a stream, whitespace before a whole JSON answer), so an answer
that takes longer than the client's timeout arrives, with one engine call; the openai and
anthropic SDKs still parse what comes. Without heartbeats, the timeout's error names the setting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from platform_doubles import FakeChat, FakeDelta, FakeRegistry

from qfnb import ChatCompletion
from qfnb.errors import TimeoutError
from qfnb.local.engines.ask import Sampling
from qfnb.local.server.middleware import heartbeat
from qfnb.local.server.middleware.heartbeat import Heartbeat
from tests.fakes.local_platform import ServedPlatform, served_platform

#: the slow engine's wait before its answer, the client's timeout, the platform's heartbeat
ANSWER_S, TIMEOUT_S, BEAT_S = 1.2, 0.6, 0.15


class SlowChat(FakeChat):
    """Thinks ``ANSWER_S`` seconds before its first word (a queue, a model loading, a long prefill)."""

    def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
        time.sleep(ANSWER_S)
        yield from super()._words(text, sampling)


class SlowRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return SlowChat(tag)


def _served(tmp_path: Path, heartbeat: float) -> Any:
    return served_platform(tmp_path / "platform", registry=SlowRegistry(), heartbeat=heartbeat)


def _calls(served: ServedPlatform) -> int:
    return len(served.registry.engines["tiny-chat"].calls)


def test_a_slow_answer_arrives_under_a_shorter_timeout_with_one_engine_call(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []  # bodies the heartbeat parsed itself (the routes leave their stream flag)
    wants_stream = heartbeat._wants_stream
    monkeypatch.setattr(heartbeat, "_wants_stream", lambda body: parsed.append(body) or wants_stream(body))
    with _served(tmp_path, BEAT_S) as served:
        chat = ChatCompletion(model="Tiny-Chat", config=served.config(llm_api_retry_timeout=TIMEOUT_S))
        whole = chat.do(messages=[{"role": "user", "content": "slow one"}])
        assert whole.body["result"] == "tiny-chat: slow one" and _calls(served) == 1
        streamed = "".join(r.body["result"] for r in chat.do(messages=[{"role": "user", "content": "slow two"}],
                                                                stream=True))
        assert streamed == "tiny-chat: slow two" and _calls(served) == 2

        raw = httpx.post(served.url + "/v2/chat/completions", timeout=10,
                         headers={"Authorization": f"Bearer {served.bearer_token()}"},
                         json={"model": "Tiny-Chat", "messages": [{"role": "user", "content": "raw"}]})
        assert raw.headers["x-qfnb-heartbeat"] == f"{BEAT_S:g}" and raw.content.startswith(b"\n")

        sdk = openai.OpenAI(base_url=served.url + "/v2", api_key=served.bearer_token(), max_retries=0,
                            timeout=TIMEOUT_S)
        done = sdk.chat.completions.create(model="Tiny-Chat", messages=[{"role": "user", "content": "sdk"}])
        assert done.choices[0].message.content == "tiny-chat: sdk"
        pieces = sdk.chat.completions.create(model="Tiny-Chat", stream=True,
                                             messages=[{"role": "user", "content": "sdk stream"}])
        assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == "tiny-chat: sdk stream"
        claude = anthropic.Anthropic(base_url=served.url, api_key=served.bearer_token(), max_retries=0,
                                     timeout=TIMEOUT_S)
        message = claude.messages.create(model="Tiny-Chat", max_tokens=16,
                                         messages=[{"role": "user", "content": "claude"}])
        assert message.content[0].text == "tiny-chat: claude"  # type: ignore[union-attr]
        assert _calls(served) == 6  # no call was sent twice
    assert parsed == []  # each body parsed once, by its route


def test_a_body_the_route_has_not_read_yet_says_whether_it_streams() -> None:
    """The heartbeat's answer before the route has parsed the body (its stream flag unknown): the
    body read then decides an SSE stream or a whole JSON answer."""

    beat = 0.02

    async def slow_route(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(beat * 3)  # silent, the body not read: the platform answers first

    async def call(body: bytes) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def receive() -> dict[str, Any]:
            return next(messages, {"type": "http.disconnect"})

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await Heartbeat(slow_route, every=beat)({"type": "http", "method": "POST", "path": "/v2/chat/completions",
                                                   "headers": []}, receive, send)
        return sent

    streamed = asyncio.run(call(b'{"model": "m", "stream": true}'))
    assert dict(streamed[0]["headers"])[b"content-type"].startswith(b"text/event-stream")
    assert streamed[1]["body"].startswith(b": working")
    whole = asyncio.run(call(b'{"model": "m"}'))
    assert dict(whole[0]["headers"])[b"content-type"] == b"application/json" and whole[1]["body"] == b"\n"


def test_without_heartbeats_the_timeout_names_its_setting(tmp_path: Path) -> None:
    with _served(tmp_path, 0) as served:
        chat = ChatCompletion(model="Tiny-Chat", config=served.config(llm_api_retry_timeout=TIMEOUT_S,
                                                                       llm_api_retry_count=1))
        with pytest.raises(TimeoutError, match=r"no byte from the platform for 0.6 s.*QIANFAN_LLM_API_RETRY_TIMEOUT"):
            chat.do(messages=[{"role": "user", "content": "too slow"}])

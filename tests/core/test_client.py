"""The async client against the fake cloud: auth schemes, retries, faults, streams, secrets."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import (
    APIError,
    AuthError,
    ConnectionError,
    InvalidArgumentError,
    RequestError,
    ServerOverloadedError,
    StreamError,
)
from qfnb._core.http.client import AsyncQianfanClient
from qfnb._core.runtime import sync
from qfnb._core.transport import Reply as TransportReply
from qfnb._core.transport import Request, StreamReply, Transport
from qfnb.protocol.wires.qianfan.routes import Target
from qfnb.protocol.wires.qianfan.signing import verify
from tests.fakes.clock import VirtualTime
from tests.fakes.cloud import FakeQianfan, Reply

MakeConfig = Callable[..., Config]
BODY = {"messages": [{"role": "user", "content": "hi"}]}
CHAT = "/chat/"


async def test_oauth_token_fetched_once_and_sent_in_query(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    results = await asyncio.gather(*(client.infer(Target("chat", "ernie-lite-8k"), BODY) for _ in range(20)))
    assert all(r["result"] == "echo[ernie-lite-8k]: hi" for r in results)
    assert len(fake.calls("/oauth/2.0/token")) == 1
    chat = fake.calls(CHAT)
    assert len(chat) == 20 and all(c.params["access_token"].startswith("24.fake") for c in chat)
    sent = chat[0].json
    assert sent["messages"] == BODY["messages"]
    assert chat[0].headers["request_id"].startswith("qfnb-")


async def test_token_refresh_on_111_once_for_a_burst(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    fake.expire_tokens()
    results = await asyncio.gather(*(client.infer(Target("chat", "ernie-lite-8k"), BODY) for _ in range(30)))
    assert len(results) == 30
    assert len(fake.calls("/oauth/2.0/token")) == 2  # one refresh for the whole burst, not 30


async def test_token_refresh_gives_up_when_new_token_rejected(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    fake.fail_next(5, "110", path=CHAT)
    with pytest.raises(APIError) as info:
        await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    assert info.value.error_code == 110
    assert len(fake.calls(CHAT)) == 2  # original + one replay after one refresh


async def test_bad_oauth_credentials(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth", sk="wrong-SECRET-sk-value"))
    with pytest.raises(AuthError) as info:
        await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    assert "Client authentication failed" in str(info.value)
    assert "wrong-SECRET-sk-value" not in str(info.value)


async def test_iam_signed_inference_and_console(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("iam"))
    resp = await client.infer(Target("chat", "ernie-lite-8k"), BODY, request_id="my-req-1")
    assert resp.result.startswith("echo")
    req = fake.calls(CHAT)[0]
    assert "access_token" not in req.params
    assert "request_id" in req.headers["authorization"].split("/")[4].split(";")
    verify(req.method, req.path, req.params, req.headers, "test_secret_key")

    @fake.route("POST", "/v2/finetuning", action="DescribeFineTuningTask")
    def detail(r: Any) -> dict[str, Any]:
        fake.check_iam(r)
        return {"requestId": "r1", "result": {"taskId": r.json["taskId"], "runStatus": "Running"}}

    out = await client.console_v2("/v2/finetuning", "DescribeFineTuningTask", {"taskId": "task-1"})
    assert out["result"] == {"taskId": "task-1", "runStatus": "Running"}
    assert fake.calls("/v2/finetuning")[0].headers["request-source"].startswith("qfnb")


async def test_wrong_iam_secret_is_a_clear_error(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("iam", secret_key="not-the-SECRET"))
    with pytest.raises(APIError) as info:
        await client.console("/wenxinworkshop/service/list", {})
    assert info.value.status_code == 403 and "does not match" in str(info.value)
    assert "not-the-SECRET" not in str(info.value)


async def test_v2_bearer_minted_from_iam(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("iam"))
    body = {"model": "ernie-lite-8k", **BODY}
    r1 = await client.chat_v2(body)
    r2 = await client.chat_v2(body)
    assert r1.result == r2.result == "echo[ernie-lite-8k]: hi"
    assert len(fake.calls("/v1/BCE-BEARER/token")) == 1
    chunks = [c async for c in await client.chat_v2(body, stream=True)]
    assert "".join(c.result for c in chunks) == "echo[ernie-lite-8k]: hi"


@pytest.mark.parametrize("kind", ["500", "429", "503", "drop", "code:336100", "code:18"])
async def test_transient_faults_are_retried(fake: FakeQianfan, make_config: MakeConfig, kind: str) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    fake.fail_next(2, kind, path=CHAT)
    resp = await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    assert resp.result == "echo[ernie-lite-8k]: hi"
    assert len(fake.calls(CHAT)) == 3


async def test_retries_exhausted_raise_the_last_error(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    fake.fail_next(3, "code:336100", path=CHAT)
    with pytest.raises(ServerOverloadedError):
        await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    fake.fail_next(5, "drop", path=CHAT)
    with pytest.raises(ConnectionError):
        await client.infer(Target("chat", "ernie-lite-8k"), BODY)


async def test_non_retryable_error_is_not_retried(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    fake.fail_next(1, "code:336003", path=CHAT)
    with pytest.raises(InvalidArgumentError):
        await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    assert len(fake.calls(CHAT)) == 1


async def test_retry_after_is_honoured(fake: FakeQianfan, make_config: MakeConfig) -> None:
    vt = VirtualTime()
    client = AsyncQianfanClient(make_config("oauth"), clock=vt, sleep=vt.sleep)
    fake.fail_next(1, "429", path=CHAT, retry_after="0.4")
    await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    assert len(fake.calls(CHAT)) == 2
    assert len(vt.sleeps) == 1 and vt.sleeps[0] >= 0.4  # the backoff alone is ~0.01 s


class _Scripted(Transport):
    """Answers each request with the next scripted (status, headers, body)."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.answers = list(answers)
        self.sent = 0

    async def send(self, request: Request) -> TransportReply:
        status, headers, body = self.answers[min(self.sent, len(self.answers) - 1)]
        self.sent += 1
        return TransportReply(status, {k.lower(): v for k, v in headers.items()}, body)

    async def stream(self, request: Request) -> StreamReply:
        raise NotImplementedError


OK_BODY = b'{"result": "ok"}'
BUSY = b'{"error_code": 336100, "error_msg": "busy"}'


async def test_retry_after_is_honoured_within_the_retry_budget() -> None:
    vt = VirtualTime()
    cases: list[tuple[tuple[int, dict[str, str], bytes], list[float], int]] = [
        ((503, {"Retry-After": "7"}, BUSY), [7.0], 2),  # on a platform error code (APIError) too
        ((429, {"Retry-After": "2"}, b""), [2.0], 2),
        ((503, {"Retry-After": "301"}, BUSY), [], 1),  # past the budget: gives up at once
    ]
    for first, sleeps, sent in cases:
        transport = _Scripted(first, (200, {}, OK_BODY))
        cfg = Config.from_env({}, base_url="http://cloud.test", no_auth=True, llm_api_retry_backoff_factor=0,
                              llm_api_retry_jitter=0)
        client = AsyncQianfanClient(cfg, transport=transport, clock=vt, sleep=vt.sleep)
        vt.sleeps.clear()
        if sleeps:
            assert (await client.infer(Target("chat", "m"), BODY)).result == "ok"
        else:
            with pytest.raises(ServerOverloadedError) as info:
                await client.infer(Target("chat", "m"), BODY)
            assert info.value.retry_after == "301"
        assert (vt.sleeps, transport.sent) == (sleeps, sent)
    # the last attempt never waits, whatever the server asks
    transport = _Scripted((429, {"Retry-After": "5"}, b""))
    client = AsyncQianfanClient(Config.from_env({}, base_url="http://cloud.test", no_auth=True,
                                                llm_api_retry_count=2, llm_api_retry_backoff_factor=0,
                                                llm_api_retry_jitter=0), transport=transport, clock=vt, sleep=vt.sleep)
    vt.sleeps.clear()
    with pytest.raises(RequestError):
        await client.infer(Target("chat", "m"), BODY)
    assert (vt.sleeps, transport.sent) == ([5.0], 2)


async def test_http_error_without_retry_surfaces_status(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth", llm_api_retry_count=1))
    fake.fail_next(1, "429", path=CHAT)
    with pytest.raises(RequestError) as info:
        await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    assert info.value.status_code == 429


async def test_stream_chunks_and_cut_stream(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    fake.stream_chunks = 4
    streamed = await client.infer(Target("chat", "ernie-lite-8k"), {**BODY, "stream": True}, stream=True)
    chunks = [c async for c in streamed]
    assert len(chunks) == 4 and chunks[-1]["is_end"] is True
    assert "".join(c["result"] for c in chunks) == "echo[ernie-lite-8k]: hi"
    assert chunks[0].statistic["first_token_latency"] > 0
    fake.cut_stream_after = 2
    got: list[Any] = []
    with pytest.raises(StreamError, match="broke off after 2 chunk"):
        async for c in await client.infer(Target("chat", "ernie-lite-8k"), {**BODY, "stream": True}, stream=True):
            got.append(c)
    assert len(got) == 2


async def test_stream_error_body_before_and_mid_stream(fake: FakeQianfan, make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    fake.fail_next(1, "code:336003", path=CHAT)
    with pytest.raises(InvalidArgumentError):
        await client.infer(Target("chat", "ernie-lite-8k"), {**BODY, "stream": True}, stream=True)

    @fake.route("POST", "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/midfail")
    def midfail(r: Any) -> Reply:
        return Reply(sse=[{"result": "a", "is_end": False}, '{"error_code": 336100, "error_msg": "overloaded"}\n',
                          {"result": "b", "is_end": True}])

    it = await client.infer(Target("chat", "midfail"), {**BODY, "stream": True}, stream=True)
    with pytest.raises(ServerOverloadedError):
        async for _ in it:
            pass

    @fake.route("POST", "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/noend")
    def noend(r: Any) -> Reply:
        return Reply(sse=[{"result": "a", "is_end": False}])

    with pytest.raises(StreamError, match="without its final event"):
        async for _ in await client.infer(Target("chat", "noend"), {**BODY, "stream": True}, stream=True):
            pass


async def test_rate_limit_is_per_client_object(fake: FakeQianfan, make_config: MakeConfig) -> None:
    vt = VirtualTime()
    limited = AsyncQianfanClient(make_config("oauth", query_per_second=10), clock=vt, sleep=vt.sleep)
    free = AsyncQianfanClient(make_config("oauth"), clock=vt, sleep=vt.sleep)
    await free.infer(Target("chat", "ernie-lite-8k"), BODY)  # token
    await asyncio.gather(*(free.infer(Target("chat", "ernie-lite-8k"), BODY) for _ in range(10)))
    assert vt.sleeps == []  # the unlimited client never waits
    t0 = vt()
    await asyncio.gather(*(limited.infer(Target("chat", "ernie-lite-8k"), BODY) for _ in range(6)))
    assert sorted(vt.sleeps) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])  # 6 starts spaced 0.1 s apart
    assert vt() - t0 == pytest.approx(0.5)


async def test_server_advertised_limits_pace_that_service(fake: FakeQianfan, make_config: MakeConfig) -> None:
    vt = VirtualTime()
    client = AsyncQianfanClient(make_config("oauth"), clock=vt, sleep=vt.sleep)
    await client.infer(Target("chat", "ernie-speed-8k"), BODY)  # a service that advertises nothing
    fake.inference_headers = {"X-Ratelimit-Limit-Requests": "300", "X-Ratelimit-Limit-Tokens": "100000"}
    await client.infer(Target("chat", "ernie-lite-8k"), BODY)  # its first answer carries the limits
    assert not client.limiter.enabled and client.needs_token_estimates()
    t0 = vt()
    await asyncio.gather(*(client.infer(Target("chat", "ernie-lite-8k"), BODY) for _ in range(6)))
    gap = 60 / 270  # 300/min at 90%: starts 0.22 s apart
    assert sorted(vt.sleeps) == pytest.approx([gap * i for i in range(1, 6)])
    assert vt() - t0 == pytest.approx(5 * gap)
    vt.sleeps.clear()
    await asyncio.gather(*(client.infer(Target("chat", "ernie-speed-8k"), BODY) for _ in range(6)))
    assert vt.sleeps == []  # the other service is not paced by this one's limits
    assert sum(limiter is not None for limiter in client.server_limits.values()) == 1


async def test_secrets_absent_from_errors_and_logs(fake: FakeQianfan, make_config: MakeConfig,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_config("both", llm_api_retry_count=2)
    client = AsyncQianfanClient(cfg)
    fake.fail_next(1, "drop", path=CHAT)
    with caplog.at_level(logging.DEBUG, logger="qfnb"):
        await client.infer(Target("chat", "ernie-lite-8k"), BODY)
        fake.fail_next(1, "code:336003", path=CHAT)
        with pytest.raises(InvalidArgumentError) as info:
            await client.infer(Target("chat", "ernie-lite-8k"), BODY)
    token = fake.calls(CHAT)[0].params["access_token"]
    text = " ".join(r.getMessage() for r in caplog.records) + str(info.value) + repr(client) + repr(
        info.value.__dict__)
    for secret in (cfg.sk, cfg.secret_key, token, "bce-auth-v1"):
        assert secret and secret not in text
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_sync_run_from_inside_a_running_loop(fake: FakeQianfan, make_config: MakeConfig) -> None:
    """Simulate Jupyter: a sync call made while this thread's event loop is running."""
    client = AsyncQianfanClient(make_config("oauth"))

    async def cell() -> str:
        resp = sync.run(client.infer(Target("chat", "ernie-lite-8k"), BODY))  # blocking call inside a running loop
        return resp.result

    assert asyncio.run(cell()) == "echo[ernie-lite-8k]: hi"
    # from worker threads too, all sharing the one background loop
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(sync.run(
        client.infer(Target("chat", "ernie-lite-8k"), BODY)).result)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["echo[ernie-lite-8k]: hi"] * 4


def test_sync_iterate_and_reentrancy_guard() -> None:
    async def gen() -> Any:
        for i in range(3):
            yield i

    assert list(sync.iterate(gen())) == [0, 1, 2]

    async def inner() -> None:
        sync.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="own event loop thread"):
        sync.run(inner())


async def test_stream_first_event_errors_are_retried_and_refresh_tokens(fake: FakeQianfan,
                                                                        make_config: MakeConfig) -> None:
    client = AsyncQianfanClient(make_config("oauth"))
    calls = [0]

    @fake.route("POST", "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/flaky")
    def flaky(r: Any) -> Reply:
        calls[0] += 1
        if calls[0] == 1:  # an SSE response whose first line is a token error
            return Reply(sse=['{"error_code": 111, "error_msg": "Access token expired"}\n'])
        if calls[0] == 2:
            return Reply(sse=['{"error_code": 336100, "error_msg": "busy"}\n'])
        return Reply(sse=[{"result": "ok", "is_end": True}])

    chunks = [c async for c in await client.infer(Target("chat", "flaky"), {**BODY, "stream": True}, stream=True)]
    assert [c.result for c in chunks] == ["ok"] and calls[0] == 3
    assert len(fake.calls("/oauth/2.0/token")) == 2  # refreshed once for the 111

"""The transport seam: each transport maps its own library's exceptions, one decoder reads plain
and streamed answers alike, the ASGI transport calls the fakes and the local app in-process, and
a transport can be injected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from qfnb import ChatCompletion
from qfnb._core.config import Config
from qfnb._core.errors import (
    AccessTokenExpiredError,
    ConnectionError,
    RateLimitError,
    RequestError,
    ServerOverloadedError,
    StreamError,
    TimeoutError,
)
from qfnb._core.http import client as client_mod
from qfnb._core.http.call import Call
from qfnb._core.http.client import AsyncQianfanClient, default_transport, get_client
from qfnb._core.http.decode import decode_body, decode_reply, open_stream
from qfnb._core.http.retry import RetryPolicy
from qfnb._core.transport import Reply, Request, StreamReply, Transport
from qfnb._core.transport.aiohttp import AiohttpTransport
from qfnb._core.transport.aiohttp import map_error as aiohttp_error
from qfnb._core.transport.asgi import ASGITransport
from qfnb._core.transport.httpx import HttpxTransport
from qfnb._core.transport.httpx import map_error as httpx_error
from qfnb.protocol.wires.qianfan.routes import Target
from tests.fakes.cloud import FakeQianfan

ONCE = RetryPolicy(attempts=1, timeout=5.0)
HI = {"messages": [{"role": "user", "content": "hi"}]}
REQ = Request("POST", "http://h/rpc/chat/x?access_token=24.SECRET", {}, b"{}")


# ---------------------------------------------------------------------------- exception mapping
@pytest.mark.parametrize(("exc", "timeout"), [
    (aiohttp.ServerTimeoutError("read"), True),
    (aiohttp.ConnectionTimeoutError("connect"), True),
    (asyncio.TimeoutError(), True),  # noqa: UP041 - what aiohttp's total timeout raises
    (aiohttp.ServerDisconnectedError(), False),
    (aiohttp.ClientPayloadError("cut"), False),
    (ConnectionResetError(104, "reset"), False),
])
def test_aiohttp_errors_map_to_qfnb_errors(exc: BaseException, timeout: bool) -> None:
    err = aiohttp_error(exc, REQ)
    assert isinstance(err, ConnectionError) and isinstance(err, TimeoutError) is timeout
    assert "/rpc/chat/x" in str(err) and "SECRET" not in str(err) and type(exc).__name__ in str(err)


@pytest.mark.parametrize(("exc", "timeout"), [
    (httpx.ReadTimeout("read"), True),
    (httpx.ConnectTimeout("connect"), True),
    (httpx.PoolTimeout("pool"), True),
    (httpx.RemoteProtocolError("cut"), False),
    (httpx.ConnectError("refused"), False),
    (httpx.ReadError("reset"), False),
])
def test_httpx_errors_map_to_qfnb_errors(exc: BaseException, timeout: bool) -> None:
    err = httpx_error(exc, REQ)
    assert isinstance(err, ConnectionError) and isinstance(err, TimeoutError) is timeout
    assert "/rpc/chat/x" in str(err) and "SECRET" not in str(err)


async def test_asgi_app_failures_look_like_a_server_s() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/before":
            raise RuntimeError("bug")
        if scope["path"] == "/slow":
            await asyncio.sleep(10)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"par", "more_body": True})
        raise ConnectionAbortedError("dropped")

    with pytest.raises(RuntimeError, match="bug"):  # raise_app_exceptions=True, as httpx's
        await ASGITransport(app).send(Request("GET", "http://app/before"))
    assert (await ASGITransport(app, raise_app_exceptions=False).send(Request("GET", "http://app/before"))
            ).status_code == 500
    with pytest.raises(ConnectionError) as cut:
        await ASGITransport(app).send(Request("GET", "http://app/cut"))
    assert not isinstance(cut.value, TimeoutError)
    with pytest.raises(TimeoutError):
        await ASGITransport(app).send(Request("GET", "http://app/slow", timeout=0.05))


async def test_asgi_stream_headers_come_before_the_body() -> None:
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["body"] == b"ping"
        await send({"type": "http.response.start", "status": 201, "headers": [(b"X-Thing", b"a")]})
        await release.wait()
        await send({"type": "http.response.body", "body": b"po", "more_body": True})
        await send({"type": "http.response.body", "body": b"ng"})

    reply = await ASGITransport(app).stream(Request("POST", "http://app/x", {}, b"ping", timeout=2))
    assert (reply.status_code, reply.headers["x-thing"], reply.headers.get("X-THING")) == (201, "a", "a")
    release.set()
    assert [c async for c in reply] == [b"po", b"ng"]
    await reply.aclose()


async def test_aiohttp_resends_once_on_a_pooled_connection_found_closed_only_when_idempotent() -> None:
    """A keep-alive connection closed under a GET costs no retry (attempts=1 here); under a POST
    it fails, since the server may have read it (the retry policy decides, not the transport)."""
    answered: list[int] = []
    conns: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                if len(answered) == 1 and len(conns) in (1, 2):  # 2nd request on the 1st (2nd) connection
                    answered.append(0)
                    writer.close()  # closed without an answer: what a stale pooled socket looks like
                    return
                answered.append(1)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                             b'{"result":"ok"}')
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        client = AsyncQianfanClient(Config.from_env({}, base_url=url, no_auth=True), transport=AiohttpTransport())
        try:
            for _ in range(3):
                assert (await client.signed_request("GET", url + "/x", content=b"{}", retry=ONCE))["result"] == "ok"
            assert answered == [1, 0, 1, 1] and len(conns) == 2
            answered[:] = [1]
            with pytest.raises(ConnectionError, match="not sent again"):
                await client.infer(Target("chat", "x"), {"messages": []}, retry=ONCE)
            assert answered == [1, 0] and len(conns) == 2
        finally:
            await client.aclose()


def test_a_loop_s_pool_closes_when_the_loop_shuts_down() -> None:
    transport = AiohttpTransport()

    async def main() -> aiohttp.ClientSession:
        first = await transport._sessions.get()
        assert await transport._sessions.get() is first  # one per loop
        return first

    session = asyncio.run(main())  # asyncio.run closes the loop's async generators: the pool with them
    assert session.closed
    assert asyncio.run(main()) is not session  # a new loop, a new pool


# ---------------------------------------------------------------------------- one decoder
def _call(stream: bool = False, api: str = "infer") -> Call:
    return Call("POST", "http://h/rpc/chat/x", HI, {"Request_id": "r1"}, None, api, stream)  # type: ignore[arg-type]


def _stream_reply(status: int, ctype: str, *chunks: bytes, cut: bool = False) -> StreamReply:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
        if cut:
            raise ConnectionError("POST /rpc/chat/x failed: connection error (ClientPayloadError)")

    async def close() -> None:
        return None

    return StreamReply(status, {"content-type": ctype}, body(), close)


@pytest.mark.parametrize(("status", "content", "error"), [
    (200, b'{"error_code": 336100, "error_msg": "busy"}', ServerOverloadedError),
    (429, b"", RequestError),
    (200, b'{"error_code": 18, "error_msg": "qps"}', RateLimitError),
    (502, b"<html>bad gateway</html>", RequestError),
    (200, b"[1, 2]", RequestError),
    (200, b'{"error_code": 111, "error_msg": "expired"}', AccessTokenExpiredError),
])
async def test_plain_and_streamed_answers_decode_the_same(status: int, content: bytes, error: type) -> None:
    headers = {"content-type": "application/json", "retry-after": "3"}
    with pytest.raises(error) as plain:
        decode_reply(_call(), Reply(status, headers, content), 0.01)
    with pytest.raises(error) as streamed:
        await open_stream(_call(stream=True), _stream_reply(status, "application/json", content), 0.0)
    assert type(plain.value) is type(streamed.value)
    if isinstance(plain.value, RequestError):
        assert plain.value.status_code == streamed.value.status_code == status  # type: ignore[attr-defined]
        assert plain.value.headers["retry-after"] == "3"


async def test_decoder_success_raw_bodies_and_one_json_chunk_for_a_stream() -> None:
    ok = decode_reply(_call(), Reply(200, {"x-baidu-request-id": "rid"}, b'{"result": "hi"}'), 0.01)
    assert ok.result == "hi" and ok.request is not None and ok.request.url == "/rpc/chat/x"
    assert decode_body(_call(api="raw"), 200, {}, b"plain text") == {"_raw": "plain text", "_bytes": b"plain text"}
    chunks = await open_stream(_call(stream=True), _stream_reply(200, "application/json", b'{"result": "one"}'), 0.0)
    assert [c.result async for c in chunks] == ["one"]


async def test_event_stream_split_across_chunks_cut_and_errors() -> None:
    events = 'data: {"result": "你", "is_end": false}\n\ndata: {"result": "好", "is_end": true}\n\n'.encode()
    split = events.index("你".encode()) + 1
    chunks = await open_stream(_call(stream=True),
                               _stream_reply(200, "text/event-stream", events[:split], events[split:]), 0.0)
    assert [c.result async for c in chunks] == ["你", "好"]
    cut = await open_stream(_call(stream=True), _stream_reply(200, "text/event-stream", events[:split + 40],
                                                              cut=True), 0.0)
    with pytest.raises(StreamError, match="broke off after 1 chunk"):
        async for _ in cut:
            pass
    with pytest.raises(ConnectionError, match="safe to retry"):  # cut before any data: retried like a call
        await open_stream(_call(stream=True), _stream_reply(200, "text/event-stream", b"data: {", cut=True), 0.0)
    with pytest.raises(ServerOverloadedError):  # an error as the first event
        await open_stream(_call(stream=True), _stream_reply(
            200, "text/event-stream", b'data: {"error_code": 336100, "error_msg": "busy"}\n\n'), 0.0)


# ---------------------------------------------------------------------------- injection
class Recording(Transport):
    """Answers every call itself and remembers the requests."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Reply:
        self.requests.append(request)
        if "/oauth/" in request.url:
            return Reply(200, {}, b'{"access_token": "24.t", "expires_in": 3600}')
        return Reply(200, {}, b'{"result": "recorded"}')

    async def stream(self, request: Request) -> StreamReply:
        reply = await self.send(request)
        return _stream_reply(reply.status_code, "application/json", reply.content)


def test_a_transport_is_injected_through_the_config_or_the_resource() -> None:
    client_mod._CLIENTS.clear()
    mine = Recording()
    chat = ChatCompletion(ak="a", sk="b", base_url="http://nowhere.invalid", transport=mine)
    assert chat.do(messages=HI["messages"]).result == "recorded"
    assert [r.path for r in mine.requests] == ["/oauth/2.0/token", "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
                                               "ernie-lite-8k"]
    assert "access_token=24.t" in mine.requests[1].url
    other = Recording()
    cfg = Config.from_env({}, ak="a", sk="b", transport=other)
    assert get_client(cfg).transport is other and get_client(cfg.with_overrides(transport=mine)).transport is mine
    assert AsyncQianfanClient(cfg, transport=mine).transport is mine  # the constructor's wins
    client_mod._CLIENTS.clear()


def test_default_transport_is_aiohttp_and_httpx_with_a_proxy() -> None:
    assert isinstance(default_transport(Config.from_env({}, ak="a", sk="b")), AiohttpTransport)
    proxied = default_transport(Config.from_env({}, ak="a", sk="b", proxy="http://127.0.0.1:3128"))
    assert isinstance(proxied, HttpxTransport)


async def test_in_process_fake_streams_and_drops(fake: FakeQianfan, make_config: Any) -> None:
    assert isinstance(fake.transport, ASGITransport)
    client = AsyncQianfanClient(make_config("oauth"))
    chunks = [c.result async for c in await client.infer(Target("chat", "ernie-lite-8k"), HI, stream=True)]
    assert "".join(chunks) == "echo[ernie-lite-8k]: hi" and len(chunks) > 1
    fake.fail_next(1, "drop", path="/chat/")
    with pytest.raises(ConnectionError):
        await client.infer(Target("chat", "ernie-lite-8k"), HI, retry=ONCE)


async def test_the_local_app_in_process(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from qfnb.local.server.app import create_app
    from qfnb.local.settings import Credentials, Settings
    from tests.local.platform_doubles import FakeRegistry

    creds = Credentials(api_key="l-ak", secret_key="l-sk", access_key="l-access", iam_secret_key="l-secret")
    transport = ASGITransport(create_app(Settings(data_dir=tmp_path, credentials=creds), FakeRegistry()))
    url = "http://local.fake"
    cfg = Config.from_env({}, base_url=url, console_api_base_url=url, iam_base_url=url, ak=creds.api_key,
                          sk=creds.secret_key, access_key=creds.access_key, secret_key=creds.iam_secret_key,
                          transport=transport)
    async with transport.lifespan():
        client = AsyncQianfanClient(cfg)
        services = await client.list_services()
        endpoint = services["common"][0]["url"].rsplit("/", 1)[1]
        answer = await client.infer(Target("chat", endpoint), HI)
        assert answer.result
        streamed = [c async for c in await client.infer(Target("chat", endpoint), HI, stream=True)]
        assert streamed and streamed[-1].get("is_end")


@pytest.mark.sockets
def test_pools_close_quietly_at_exit(fake: FakeQianfan) -> None:
    """A script's pools (qfnb's own loop, an ``asyncio.run`` loop, a loop kept) close when it exits:
    no "Unclosed client session/connector" noise, and no private aiohttp call to get there."""
    import json
    import subprocess
    import sys

    env = json.dumps(fake.env(fake.base_url, "oauth"))
    script = (f"import asyncio\nfrom qfnb import ChatCompletion\nfrom qfnb._core.config import Config\n"
              f"chat = ChatCompletion(config=Config.from_env({{}}, **{env}))\n"
              f"print(chat.do(messages=[{{'role': 'user', 'content': 'a'}}]).result)\n"
              f"print(asyncio.run(chat.ado(messages=[{{'role': 'user', 'content': 'b'}}])).result)\n"
              f"kept = asyncio.new_event_loop()  # a loop kept and stopped, never shut down (as IPython's)\n"
              f"print(kept.run_until_complete(chat.ado(messages=[{{'role': 'user', 'content': 'c'}}])).result)\n")
    out = subprocess.run([sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["echo[ernie-lite-8k]:", "a", "echo[ernie-lite-8k]:", "b", "echo[ernie-lite-8k]:", "c"]
    assert "Unclosed" not in out.stderr and "never awaited" not in out.stderr, out.stderr


def test_the_transports_are_exported_lazily() -> None:
    import qfnb._core as core
    import qfnb._core.globals  # noqa: F401 - the submodule named like the builtin once broke the lazy lookup

    assert (core.ASGITransport, core.AiohttpTransport, core.HttpxTransport, core.Transport) == (
        ASGITransport, AiohttpTransport, HttpxTransport, Transport)

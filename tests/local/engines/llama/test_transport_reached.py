"""Whether an HTTP engine had a request that it never answered: what a batch job pays for.

An engine that reads a whole request and dies before answering closes the connection cleanly, as
an engine closing a pooled keep-alive connection does; the transport sends the request once more.
When that resend finds no engine, the first sending was the dying engine's: it was received, so
it is paid (the chaos bench's seed 1 under-counted one such send by its 3 prompt tokens)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from qfnb.local.engines.base import on_reached
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint
from qfnb.local.engines.llama.process.server import EngineUnavailable
from tests.fakes.raw_engine import raw_engine


@pytest.mark.parametrize("engine", ["dies", "answers"])
async def test_a_request_the_dying_engine_read_counts_as_reached(engine: str) -> None:
    server, received = await raw_engine(engine)
    port = server.sockets[0].getsockname()[1]
    confirmed: list[bool] = []
    token = on_reached.set(lambda: confirmed.append(True))
    try:
        target = Endpoint(f"http://127.0.0.1:{port}/v1")
        body = {"model": "m", "messages": [{"role": "user", "content": "row 1"}], "stream": True}
        if engine == "dies":
            with pytest.raises(EngineUnavailable) as caught:
                [d async for d in transport.stream("m", target, "/chat/completions", body)]
            assert caught.value.reached  # the engine read it: paid (it was taken back as never sent)
        else:
            text = "".join([d.text async for d in transport.stream("m", target, "/chat/completions", body)])
            assert text == "hi"
    finally:
        on_reached.reset(token)
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
    assert len(received) == 1 and b"row 1" in received[0]
    assert confirmed  # the body went out: the caller journaled that the engine had it


async def test_a_refused_request_is_not_reached() -> None:
    """No engine at all: nothing was sent, nothing is paid."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    body = {"model": "m", "messages": [{"role": "user", "content": "row 1"}], "stream": True}
    with pytest.raises(EngineUnavailable) as caught:
        [d async for d in transport.stream("m", Endpoint(f"http://127.0.0.1:{port}/v1"), "/chat/completions", body)]
    assert not caught.value.reached

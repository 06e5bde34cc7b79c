"""The daemon's uvicorn server wakes once a second, not ten times, and exits at once when told to."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from qfnb.local.server.quiet import QuietServer


async def hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hi")


async def test_an_idle_server_ticks_once_a_second_and_exits_when_told_from_another_thread() -> None:
    app = Starlette(routes=[Route("/", hello)])
    server = QuietServer(uvicorn.Config(app, log_level="warning", lifespan="off"))
    ticks = 0
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        nonlocal ticks
        ticks += 1
        return await on_tick(counter)

    server.on_tick = counted  # type: ignore[method-assign]
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/")
        assert answer.text == "hi" and "date" in answer.headers  # the Date header is kept
        await asyncio.sleep(2.2)
        assert ticks <= 4  # uvicorn's own loop: about 23 in that time
        told = time.monotonic()
        threading.Thread(target=lambda: setattr(server, "should_exit", True)).start()
        await asyncio.wait_for(serving, 5)
        assert time.monotonic() - told < 0.5  # not at the next tick
    finally:
        if not serving.done():
            serving.cancel()
        sock.close()

"""The least a Python ASGI server can do a token: read the engine's event, write the client's.

    python bench/pump_floor.py UPSTREAM_PORT   # prints "relay port N", then serves completions on N

uvicorn (httptools, uvloop) runs a bare ASGI app, with no framework and no middleware. Each request is sent
to the engine on its own connection. Each engine event is handled in that socket's ``data_received``
callback:
- its SSE is split as bytes (``sse.DataEvents``);
- its JSON is read by orjson;
- a Qianfan v1 chunk (``result``, ``sentence_id``, ``usage``) is written by orjson;
- uvicorn's ``send`` is driven in the same callback. It completes without waiting unless the client
  stops reading, and that case is refused here.

No task wakes a token and no generator is resumed. ``bench/serving.py --pump-floor`` measures it as a
side of its own, with its own bare llama-server. It sits between the byte relay (``bench/byte_relay.py``,
nothing done a token) and the platform (a task woken a token, the serving layers' async generators, the
ASGI middlewares). What it costs a token is the floor for any platform that parses and rewrites each
token in Python behind uvicorn.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import httptools
import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qfnb.protocol.wires.codec.sse import DataEvents

Send = Callable[[dict[str, Any]], Awaitable[None]]


def _drive(step: Awaitable[None]) -> None:
    """Run ``step`` (uvicorn's ``send``) to its end now: it waits only when the client stops reading."""
    coro = cast(Coroutine[Any, Any, None], step)
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("the client stopped reading: the pump floor does not wait for it")


class _Engine(asyncio.Protocol):
    """One request's engine connection: each event it streams is written to the client as it is read."""

    def __init__(self, send: Send, done: asyncio.Future[None]) -> None:
        self.send, self.done = send, done
        self.parser = httptools.HttpResponseParser(self)
        self.events = DataEvents()
        self.sentence = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_headers_complete(self) -> None:
        _drive(self.send({"type": "http.response.start", "status": 200,
                          "headers": [(b"content-type", b"text/event-stream")]}))

    def on_body(self, body: bytes) -> None:
        for payload in self.events.feed(body):
            if payload == b"[DONE]":
                continue
            for choice in orjson.loads(payload).get("choices") or ():
                if choice.get("text"):
                    self.sentence += 1
                    self.usage["completion_tokens"] = self.usage["total_tokens"] = self.sentence
                    chunk = {"id": "as-pump", "object": "completion", "created": 0, "sentence_id": self.sentence,
                             "is_end": False, "is_truncated": False, "result": choice["text"],
                             "need_clear_history": False, "usage": self.usage}
                    _drive(self.send({"type": "http.response.body", "more_body": True,
                                      "body": b"data: " + orjson.dumps(chunk) + b"\n\n"}))

    def on_message_complete(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def app_for(upstream: int) -> Callable[[dict[str, Any], Any, Send], Awaitable[None]]:
    """The ASGI app that pumps every POST to ``/v1/completions`` on 127.0.0.1:``upstream``."""

    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: _Engine(send, done), "127.0.0.1", upstream)
        transport.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        try:
            await done
        finally:
            transport.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print("relay port", sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app_for(int(sys.argv[1])), log_level="warning", access_log=False, loop="uvloop",
                            http="httptools")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

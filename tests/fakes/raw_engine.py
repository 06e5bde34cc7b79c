"""A one-connection-at-a-time OpenAI-compatible engine on a raw asyncio server (no HTTP framework
between the bytes and the test): it reads each request whole and either answers it with a one-word
stream (and its usage) or, ``dies``, stops listening and hangs up without answering (an engine
killed after it read the request)."""

from __future__ import annotations

import asyncio
import json


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP request, head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


async def raw_engine(on_request: str = "answers") -> tuple[asyncio.Server, list[bytes]]:
    """The engine on a free port of 127.0.0.1, and the requests it received (``on_request``:
    ``"answers"`` or ``"dies"``)."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        if on_request == "dies":
            server.close()  # no engine listens from now on
            writer.close()
            return
        chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
        usage = {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, received

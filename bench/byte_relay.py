"""The least a server between a client and an engine can do: pass the bytes on, unread.

    python bench/byte_relay.py UPSTREAM_PORT   # prints "relay port N", then forwards 127.0.0.1:N -> UPSTREAM_PORT

Each connection accepted is joined to a new connection to the upstream port, and what either side
sends is written to the other as it arrives (asyncio protocols on uvloop where installed: no parsing,
no copies beyond the kernel's). ``bench/serving.py --relay-floor`` puts it in front of bare
llama-server: what any process in the path costs on the same cores, before it does any work of its
own, is the floor the platform is measured against.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import cast


class _Pipe(asyncio.Protocol):
    """One side of a joined pair: what it reads goes to ``peer``'s transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []  # read before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def _serve(upstream: int) -> None:
    loop = asyncio.get_running_loop()
    joining: set[asyncio.Task[None]] = set()  # held until done (the loop keeps only weak references)

    def accepted() -> _Pipe:
        client = _Pipe()

        async def join() -> None:
            _, engine = await loop.create_connection(_Pipe, "127.0.0.1", upstream)
            engine.peer, client.peer = client, engine
            for data in client.pending:
                cast(asyncio.Transport, engine.transport).write(data)
            client.pending.clear()

        task = loop.create_task(join())
        joining.add(task)
        task.add_done_callback(joining.discard)
        return client

    server = await loop.create_server(accepted, "127.0.0.1", 0)
    print("relay port", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def main() -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(int(sys.argv[1])))
    else:
        uvloop.run(_serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()

"""Serving an ASGI app (a fake, or the local platform) on a real socket for tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serve(app: Any, *, lifespan: str = "off") -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 in a daemon thread; yield its base URL; stop it.
    ``lifespan="on"`` runs the app's startup/shutdown (the local platform needs it). The socket is
    bound here and handed to uvicorn, so no other process can take the port in between."""
    import uvicorn

    from qfnb.local.server.listen import bind, bound_port

    sock = bind("127.0.0.1")
    port = bound_port(sock)
    config = uvicorn.Config(app, log_level="critical", lifespan=lifespan, access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-qianfan", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # the local platform's startup took over 10 s at load 20+ on 2 cores
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError("fake Qianfan server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()

"""``qfnb serve --daemon``: the platform as the data dir's shared background service.

It binds 127.0.0.1 once (the previous daemon's port if free, else one the kernel picks), serves
the app on that socket, and writes ``<data_dir>/runtime.json`` (mode 0600: URL, pid, version,
start time, control token) once it answers, so that every kernel, script and ``qfnb`` command
on the machine finds and shares it. The file is removed when the daemon exits. Its stdout/stderr
go to ``<data_dir>/daemon.log`` (the spawner opens it).
A second daemon for the same data dir refuses to start (``daemon.lock``, exit code 3). A request whose
``Host`` or ``Origin`` is not a loopback name is refused 403 (:class:`~.guard.LoopbackOnly`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from pathlib import Path

from qfnb.local.engines.api import RegistryLike
from qfnb.local.engines.catalog import BUILTIN_SPECS
from qfnb.local.server import listen
from qfnb.local.server.app import create_app
from qfnb.local.server.middleware.guard import LoopbackOnly
from qfnb.local.server.routes.daemon import control
from qfnb.local.settings import Settings
from qfnb.protocol.console.model_names import LOCAL_DEFAULT_MODELS, LOCAL_TOOL_MODEL, TOOLS_DEFAULT_KEY
from qfnb.protocol.platform.daemon import LOCK_FILE, RUNTIME_FILE, SERVED_ELSEWHERE, RuntimeInfo
from qfnb.protocol.platform.files import write_private_json
from qfnb.protocol.version import __version__

log = logging.getLogger("qfnb.local.server.daemon")

def published_defaults() -> dict[str, str]:
    """The runtime file's ``default_models``: each API type's, and the tool model (under
    :data:`TOOLS_DEFAULT_KEY`) when it is installed, for clients that pick it for tool calls."""
    tools = {TOOLS_DEFAULT_KEY: LOCAL_TOOL_MODEL} if LOCAL_TOOL_MODEL in BUILTIN_SPECS else {}
    return {**LOCAL_DEFAULT_MODELS, **tools}


def _remove_if_ours(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def hold_serving_lock(data_dir: Path) -> int | None:
    """Hold ``<data_dir>/daemon.lock`` for as long as this process serves (an fd to keep open),
    or None when another daemon holds it: one daemon per data dir, however it was started.

    This is a POSIX record lock (``lockf``); the clients' start lock on the same file is a
    ``flock``, and on Linux the two kinds never block each other, so a client can hold its start
    lock while the daemon it spawned takes this one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def run(settings: Settings, *, host: str = "127.0.0.1", port: int = 0, registry: RegistryLike | None = None,
        log_level: str = "info") -> int:
    """Serve until stopped (SIGTERM, SIGINT or ``POST /qfnb/shutdown``); returns the exit code."""
    from qfnb.local.server.quiet import QuietServer, platform_config  # deferred: loads uvicorn

    serving_lock = hold_serving_lock(settings.data_dir)
    if serving_lock is None:
        log.error("another qfnb daemon already serves %s (see %s); not starting a second one",
                  settings.data_dir, settings.data_dir / RUNTIME_FILE)
        return SERVED_ELSEWHERE
    # bound here and handed to uvicorn, so the port written to the runtime file is the one served;
    # a previous daemon's port (what clients may still hold) is preferred when it is free
    sock = listen.bind_preferring(host, port)
    url = listen.url_of(sock)
    started, token = time.time(), secrets.token_urlsafe(24)
    server: QuietServer | None = None

    def request_exit() -> None:
        assert server is not None
        server.should_exit = True

    app = create_app(settings, registry, extra_routes=control.routes(token, started, __version__, request_exit))
    # bound to 127.0.0.1: only a loopback Host/Origin may call it (DNS rebinding, browser pages)
    server = QuietServer(platform_config(LoopbackOnly(app), log_level, lifespan="on"))
    runtime = settings.data_dir / RUNTIME_FILE

    async def main() -> None:
        assert server is not None
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            info = RuntimeInfo(url=url, pid=os.getpid(), version=__version__, started=started,
                               control_token=token, default_models=published_defaults())
            write_private_json(runtime, info.to_dict())
            log.info("qfnb daemon %s serving %s (data in %s)", __version__, url, settings.data_dir)
        await serving

    try:
        # the loop uvicorn itself runs (uvloop, installed with uvicorn[standard]), as `qfnb serve` in the
        # foreground does, not asyncio.run's own: every token the platform passes on is a socket read and a write
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(main())
    finally:
        _remove_if_ours(runtime)
        sock.close()
        os.close(serving_lock)
    return 0

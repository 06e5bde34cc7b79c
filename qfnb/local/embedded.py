"""The embedded local platform (Contract 1): uvicorn on 127.0.0.1 in a daemon thread.

``ensure_started()`` starts one server per process and data dir, with credentials kept in
``<data_dir>/credentials.json`` (mode 0600), and stops it when the interpreter exits.
"""

from __future__ import annotations

import atexit
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.local.engines.registry import DEFAULT_MODELS
from qfnb.local.settings import Settings, default_data_dir

log = logging.getLogger("qfnb.local")



@dataclass(frozen=True)
class EmbeddedPlatform:
    """Where the running embedded platform is and how to authenticate to it."""

    base_url: str
    api_key: str
    secret_key: str
    access_key: str
    iam_secret_key: str
    default_models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    data_dir: Path = field(default_factory=default_data_dir)

    def __repr__(self) -> str:
        return (f"EmbeddedPlatform(base_url={self.base_url!r}, api_key={self.api_key!r}, "
                f"access_key={self.access_key!r}, data_dir={str(self.data_dir)!r}, secrets=***)")


_started: dict[Path, tuple[EmbeddedPlatform, Any, threading.Thread]] = {}
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_started(data_dir: Path | None = None, *, registry: Any = None, timeout: float = 30.0) -> EmbeddedPlatform:
    """The embedded platform for ``data_dir`` (``$QFNB_DATA_DIR`` or ``~/.qfnb``), started if needed.

    ``registry`` replaces the real engines (tests).
    """
    import uvicorn

    from qfnb.local.server.app import create_app

    root = (Path(data_dir) if data_dir is not None else default_data_dir()).expanduser().resolve()
    with _lock:
        if root in _started:
            return _started[root][0]
        settings = Settings.from_env(data_dir=root)
        port = free_port()
        app = create_app(settings, registry)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="qfnb-embedded-platform", daemon=True)
        thread.start()
        deadline = time.time() + timeout
        while not server.started:
            if not thread.is_alive() or time.time() > deadline:
                server.should_exit = True
                raise RuntimeError(f"the embedded local platform did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        creds = settings.credentials
        info = EmbeddedPlatform(base_url=f"http://127.0.0.1:{port}", api_key=creds.api_key,
                                secret_key=creds.secret_key, access_key=creds.access_key,
                                iam_secret_key=creds.iam_secret_key, default_models=dict(DEFAULT_MODELS),
                                data_dir=root)
        _started[root] = (info, server, thread)
        log.info("embedded local platform listening on %s (data in %s)", info.base_url, root)
        return info


def stop(data_dir: Path | None = None, timeout: float = 15.0) -> None:
    """Stop the embedded platform of ``data_dir`` (all of them when None)."""
    with _lock:
        roots = list(_started) if data_dir is None else [Path(data_dir).expanduser().resolve()]
        entries = [_started.pop(r) for r in roots if r in _started]
    for _, server, _thread in entries:
        server.should_exit = True
    for _, _, thread in entries:
        thread.join(timeout)


atexit.register(stop)

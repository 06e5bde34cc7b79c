"""What the benches share: the local platform (``qfnb serve``) and a bare ``llama-server`` with the
platform's own flags, each started on a free loopback port, an OpenAI client on a throwaway local
platform, and the benches' log format and load-average line. It puts the repo and ``tests/local``
(the platform test helpers) on ``sys.path``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests" / "local")) if p not in sys.path]

from platform_helpers import serve_port, spawn_reporting, wait_up  # noqa: E402

from qfnb.local.engines import DEFAULT_CHAT  # noqa: E402
from qfnb.local.engines.llama.process.command import ServerConfig, reported_port  # noqa: E402
from qfnb.local.engines.llama.process.server import LlamaServer  # noqa: E402
from qfnb.local.engines.store import assets  # noqa: E402


def retry(call: Any, tries: int = 60) -> Any:
    """A user's retry of a call that met a dead daemon: again after a second, ``tries`` times."""
    for attempt in range(tries):
        try:
            return call()
        except Exception as exc:
            if attempt == tries - 1:
                raise
            logging.getLogger("bench").debug("retrying after %s", exc)
            time.sleep(1.0)
    raise AssertionError("unreachable")


#: the loggers of the HTTP libraries that log each request at INFO: httpx, and httpx2 (what the openai
#: SDK sends through)
HTTP_LOGGERS = ("httpx", "httpx2")


def log_to_stdout() -> None:
    """The benches' log lines: the message only; the HTTP libraries' per-request lines left out."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def load_average() -> str:
    """The machine's 1, 5 and 15-minute load averages, as a bench states them at its start and end."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def local_openai_client(prefix: str, *, timeout: float) -> Iterator[Any]:
    """An OpenAI client (``timeout`` seconds a request, no retries) on a local platform over a fresh
    temporary data dir named ``prefix...``; the platform's daemon is stopped on leaving."""
    import qfnb
    from qfnb._core.backend import daemon

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data = Path(tmp) / "data"
        client = qfnb.openai_client(data_dir=data, timeout=timeout, max_retries=0)
        try:
            yield client
        finally:
            daemon.stop_daemon(data, force=True, timeout=30)


def printed_port(label: str) -> Callable[[bytes], int | None]:
    """For :func:`spawn_reporting`: the port a bench helper prints as ``<label> port N`` in its log."""
    pattern = re.compile(label.encode() + rb" port (\d+)")

    def port_of(log: bytes) -> int | None:
        found = pattern.search(log)
        return int(found.group(1)) if found else None

    return port_of


def serve_platform(data_dir: Path, log_path: Path, root: Path = ROOT,
                   **env: str) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """``qfnb serve`` from the checkout ``root`` over ``data_dir`` (no ``QIANFAN_*`` settings, ``env``
    added): the process, its base URL and its credentials, once it answers ``/healthz``."""
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
            **env}
    for key in [k for k in full if k.startswith("QIANFAN_")]:
        full.pop(key)
    data_dir.mkdir(parents=True, exist_ok=True)
    proc, port = spawn_reporting([sys.executable, "-m", "qfnb.cli", "serve", "--port", "0", "--data-dir",
                                  str(data_dir), "--log-level", "warning"], log_path, serve_port, env=full,
                                 cwd=str(root))
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/healthz", proc, 180)
    return proc, base, json.loads((data_dir / "credentials.json").read_text())


def serve_bare(slots: int, log_dir: Path, gguf: Path | None = None, env: dict[str, str] | None = None,
               adapters: tuple[Path, ...] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """``llama-server`` on ``gguf`` (default: the default chat model's) with exactly the flags the
    platform uses (``adapters`` loaded unapplied, and ``env`` added to its environment): the process
    and its base URL, once it answers ``/health``."""
    gguf = gguf or assets.gguf_path(DEFAULT_CHAT)
    server = LlamaServer(ServerConfig(name="bare", gguf=gguf, log_dir=log_dir, slots=slots))
    argv = server.config.argv(server.binary, adapters)
    server.close()
    log_dir.mkdir(parents=True, exist_ok=True)
    proc, port = spawn_reporting(argv, log_dir / "bare.log", reported_port, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/health", proc, 180)
    return proc, base

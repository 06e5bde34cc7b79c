"""The bench's stand-in servers under test: an upstream double, and a stand-in (``bench/<script>``, which prints
"relay port N") in front of it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


@contextlib.contextmanager
def stand_in(script: str, upstream_handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``bench/<script>`` in front of an upstream answering with ``upstream_handler``: the stand-in's URL
    (both stopped after)."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), upstream_handler)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proc = subprocess.Popen([sys.executable, str(BENCH / script), str(upstream.server_address[1])],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("relay port "), line
        yield f"http://127.0.0.1:{int(line.split()[-1])}"
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.shutdown()
        upstream.server_close()

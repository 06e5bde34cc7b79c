"""The bench's stand-in servers under test: an upstream double that streams its pieces 50 ms apart, and a
stand-in (``bench/<script>``, which prints "relay port N") in front of it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


class ChunkedUpstream(BaseHTTPRequestHandler):
    """Answers a POST with :meth:`pieces` of its body, chunked, 50 ms apart (so a stand-in that held them to
    the end would show it)."""

    protocol_version = "HTTP/1.1"

    def pieces(self, body: bytes) -> list[bytes]:
        raise NotImplementedError

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in self.pieces(body):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(0.05)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


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

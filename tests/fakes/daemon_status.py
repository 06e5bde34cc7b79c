"""A fake of the daemon's control status route (``GET /qfnb/status``) for client-side tests.

It answers the JSON in ``FakeStatus.body`` to requests carrying the control token, so tests of
what the client does with ``engines`` need no real daemon, engine or model.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from qfnb.protocol.platform.daemon import CONTROL_HEADER, RUNTIME_FILE, STATUS_ROUTE

TOKEN = "control-token-1"
QWEN = "Qwen2.5-Coder-0.5B-Instruct"
STARTING = {"model": QWEN, "endpoint": "qwen2_5_coder_0_5b_instruct", "state": "starting",
            "since": 1_700_000_000.5, "slots": 2, "busy": 0, "queued": 1}


#: the longest a held answer waits for its release (a client without a timeout gets it then)
HOLD_CAP_S = 5.0


class FakeStatus:
    """What the fake daemon answers: ``body`` (JSON) and ``status``. Setting ``hold`` makes
    every answer wait until the test sets it (at most :data:`HOLD_CAP_S`), so a client's
    timeout is checked by the order of events, not by elapsed time; ``answered`` lists the
    requests answered so far."""

    def __init__(self) -> None:
        self.body: Any = {"pid": 1, "engines": [STARTING]}
        self.status = 200
        self.hold: threading.Event | None = None
        self.headers: list[str | None] = []
        self.answered: list[str] = []


@contextlib.contextmanager
def fake_status_daemon(data_dir: Path) -> Iterator[FakeStatus]:
    """Serve a fake status route on 127.0.0.1 and write ``data_dir``'s runtime file pointing at it."""
    answer = FakeStatus()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer.headers.append(self.headers.get(CONTROL_HEADER))
            if answer.hold is not None:
                answer.hold.wait(HOLD_CAP_S)
            ok = self.path == STATUS_ROUTE and self.headers.get(CONTROL_HEADER) == TOKEN
            payload = json.dumps(answer.body if ok else {"error": "control token required"}).encode()
            self.send_response(answer.status if ok else 403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            answer.answered.append(self.path)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handle_error = lambda *args: None  # type: ignore[method-assign]  # a client that gave up (timeout tests)
    # shutdown() waits out one poll of serve_forever: keep it short (the default is 0.5 s a test)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    runtime = {"url": f"http://127.0.0.1:{server.server_address[1]}", "pid": 1, "version": "0",
               "started": 0.0, "control_token": TOKEN}
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / RUNTIME_FILE).write_text(json.dumps(runtime))
    try:
        yield answer
    finally:
        (data_dir / RUNTIME_FILE).unlink(missing_ok=True)  # no daemon to stop at the session's end
        server.shutdown()
        server.server_close()

"""A stand-in for llama-server's start-up: it binds ``--port`` (0: a port the kernel picks), logs
the address as llama-server does once its model is loaded, and answers ``/health``. With
``FAKE_LORA_LOAD=1`` in its environment it also loads adapters at runtime as the patched build does
(``POST /lora-adapters/load`` → the adapter's id; ``GET /lora-adapters`` lists them)."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADAPTERS: list[str] = []  # the --lora files, then those loaded at runtime
LOADS = os.environ.get("FAKE_LORA_LOAD") == "1"


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if LOADS and self.path == "/lora-adapters":
            self._json([{"id": i, "path": p, "scale": 0.0} for i, p in enumerate(ADAPTERS)])
            return
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/lora-adapters/load" or not LOADS:  # no other route; no runtime load: 404, as upstream
            self.send_response(501 if self.path != "/lora-adapters/load" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = json.loads(body)["path"]
        if path not in ADAPTERS:
            ADAPTERS.append(path)
        self._json({"success": True, "id": ADAPTERS.index(path), "path": path})

    def _json(self, value: object) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str]) -> None:
    host, port = argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1])
    ADAPTERS.extend(argv[i + 1] for i, a in enumerate(argv) if a == "--lora")
    server = ThreadingHTTPServer((host, port), Health)
    print(f"srv          main: listening on http://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)

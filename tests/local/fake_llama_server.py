"""A stand-in for llama-server's start-up: it binds ``--port`` (0: a port the kernel picks), logs
the address as llama-server does once its model is loaded, and answers ``/health``. With
``FAKE_LORA_LOAD=1`` in its environment it also loads adapters at runtime as the patched build does
(``POST /lora-adapters/load`` → the adapter's id; ``GET /lora-adapters`` lists them). With
``FAKE_PATCHED=1`` its ``/props`` says which of our builds' switches it took, as the build patched with
scripts/llama_server_seed_invariant.patch and llama_server_grammar_draft.patch does
(``seed_batch_invariant``, ``spec_grammar``, ``json_one_line``: each true when its variable is ``1``
in its environment), and lacks the fields otherwise, as upstream's; it then also keeps a stream's pace when
asked, as scripts/llama_server_stream_pace.patch does (``stream_pace`` in ``/props``; ``stream_interval_ms``
and ``stream_tokens``: the first token at once, then the words held until that many are or the interval has
passed, sent as one event that carries ``timings.predicted_n``).

With ``FAKE_DECODE=1`` it also decodes, as a slow-engine double of one decode loop: ``/tokenize``
(a token per word), ``/apply-template`` (the contents joined), ``/slots`` and a streaming
``/v1/completions`` that writes ``" w0 w1 ..."`` (one word per ``FAKE_TOKEN_SECONDS``; a prompt
ending in words already written goes on after them), with ``prompt_progress`` chunks first when
asked (``return_progress``). A request with a ``json_schema`` holds the loop for good, as an
exploding grammar does: every stream stops, ``/slots`` never answers and SIGTERM is ignored. A
prompt with the word ``silent`` gets no answer at all (the loop goes on); one with ``slowprefill``
gets six progress chunks 0.3 s apart (``FAKE_PREFILL_SECONDS``) before its tokens; one with
``deaf`` leaves its slot processing for good, even after its client left (``/slots`` says so).
``FAKE_SLOTS_SECONDS``: ``/slots`` answers that long after it is asked (the loop in an honest long
step, as on an overloaded machine)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ADAPTERS: list[str] = []  # the --lora files, then those loaded at runtime
LOADS = os.environ.get("FAKE_LORA_LOAD") == "1"
DECODE = os.environ.get("FAKE_DECODE") == "1"
PATCHED = os.environ.get("FAKE_PATCHED") == "1"
TOKEN_SECONDS = float(os.environ.get("FAKE_TOKEN_SECONDS", "0.02"))
PREFILL_SECONDS = float(os.environ.get("FAKE_PREFILL_SECONDS", "0.3"))
SLOTS_SECONDS = float(os.environ.get("FAKE_SLOTS_SECONDS", "0"))
STUCK = threading.Event()  # a grammar holds the decode loop


def _hold_if_stuck() -> None:
    while STUCK.is_set():
        time.sleep(0.05)


#: words that keep their meaning as token ids (every other word is its position)
MARKS = {"silent": 999_001, "slowprefill": 999_002, "deaf": 999_003}
DEAF: set[int] = set()  # slots that go on after their client left (cancellation ignored)


def _words(prompt: Any) -> list[str]:
    if isinstance(prompt, list):
        named = {v: k for k, v in MARKS.items()}
        return [w for p in prompt for w in (p.split() if isinstance(p, str) else [named.get(p, str(p))])]
    return str(prompt).split()


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if DECODE and self.path == "/slots":
            _hold_if_stuck()  # answered by the decode loop, between two steps
            time.sleep(SLOTS_SECONDS)
            self._json([{"id": i, "is_processing": True} for i in sorted(DEAF)])
            return
        if self.path == "/props":
            switches = {field: os.environ.get(env) == "1" for field, env in (
                ("seed_batch_invariant", "LLAMA_ARG_SEED_BATCH_INVARIANT"), ("spec_grammar", "LLAMA_ARG_SPEC_GRAMMAR"),
                ("json_one_line", "LLAMA_ARG_JSON_ONE_LINE"))}
            self._json({"total_slots": 1, **({**switches, "stream_pace": True} if PATCHED else {})})
            return
        if LOADS and self.path == "/lora-adapters":
            self._json([{"id": i, "path": p, "scale": 0.0} for i, p in enumerate(ADAPTERS)])
            return
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if DECODE and self.path in ("/tokenize", "/apply-template", "/v1/completions"):
            self._decode(json.loads(body))
            return
        if self.path != "/lora-adapters/load" or not LOADS:  # no other route; no runtime load: 404, as upstream
            self.send_response(501 if self.path != "/lora-adapters/load" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = json.loads(body)["path"]
        if path not in ADAPTERS:
            ADAPTERS.append(path)
        self._json({"success": True, "id": ADAPTERS.index(path), "path": path})

    def _decode(self, body: dict[str, Any]) -> None:
        if self.path == "/tokenize":
            self._json({"tokens": [MARKS.get(w, i) for i, w in enumerate(body["content"].split())]})
            return
        if self.path == "/apply-template":
            self._json({"prompt": " ".join(str(m.get("content")) for m in body["messages"])})
            return
        words = _words(body["prompt"])
        if body.get("json_schema"):
            STUCK.set()
        if "silent" in words or STUCK.is_set():
            time.sleep(3600)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if body.get("return_progress"):
            for i in range(6 if "slowprefill" in words else 1):
                self._event({"choices": [], "prompt_progress": {"total": 6, "processed": i + 1}})
                time.sleep(PREFILL_SECONDS if "slowprefill" in words else 0)
        first = sum(1 for w in words if w.startswith("w") and w[1:].isdigit())  # words written before
        if "deaf" in words:
            DEAF.add(int(body.get("id_slot", 0)))
        try:
            self._words(body, first)
        except OSError:  # the client left: the slot stops, unless it is deaf
            return
        usage = {"prompt_tokens": len(body["prompt"]) if isinstance(body["prompt"], list) else len(words),
                 "completion_tokens": int(body["max_tokens"])}
        self._event({"choices": [{"index": 0, "text": "", "finish_reason": "length"}], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")

    def _words(self, body: dict[str, Any], first: int) -> None:
        """The answer's words ``w{first}`` on, one event each, or a few an event where the stream is paced."""
        interval = int(body.get("stream_interval_ms") or 0) / 1000 if PATCHED else 0.0
        every = int(body.get("stream_tokens") or 1)
        held: list[str] = []
        sent = 0.0  # when the last event went out (0: none yet)
        for i in range(int(body["max_tokens"])):
            time.sleep(TOKEN_SECONDS)
            _hold_if_stuck()
            held.append(f" w{first + i}")
            if interval and sent and len(held) < every and time.monotonic() - sent < interval:
                continue
            self._held(held, i + 1, interval)
            sent = time.monotonic()
        self._held(held, int(body["max_tokens"]), interval)

    def _held(self, held: list[str], tokens: int, interval: float) -> None:
        """The words ``held`` as one event (none if none are), emptied; a paced one says the count so far."""
        if held:
            timings = {"timings": {"predicted_n": tokens}} if interval else {}
            self._event({"choices": [{"index": 0, "text": "".join(held), "finish_reason": None}], **timings})
            held.clear()

    def _event(self, data: object) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

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
    signal.signal(signal.SIGTERM, lambda *_: None if STUCK.is_set() else os._exit(0))  # stuck: no way out
    server = ThreadingHTTPServer((host, port), Health)
    server.daemon_threads = True
    print(f"srv          main: listening on http://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)

"""Issue 92 §5: ``/healthz`` stays under 1 s through the daemon's first schema call. The daemon imports
``jsonschema`` (seconds on 2 cores) before it serves, not on its event loop when the first call with a JSON
schema arrives (the probe saw /healthz stall 3.9 s)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx
from platform_helpers import Signer

from qfnb._core.backend import daemon

FAKE_WORKER = Path(__file__).parents[1] / "fake_worker.py"
DOUBLES = ["--registry", "tests.local.platform_doubles:FakeRegistry",
           "--worker-command", f"{sys.executable} {FAKE_WORKER}"]
SCHEMA = {"type": "object", "properties": {"site": {"type": "string", "format": "iri"},
                                           "tags": {"type": "array", "uniqueItems": True}}}


def test_healthz_answers_within_a_second_through_the_first_schema_call(daemon_data_dir: Path) -> None:
    platform = daemon.ensure_daemon(daemon_data_dir, serve_args=DOUBLES)
    try:
        signer = Signer(platform.access_key, platform.iam_secret_key)
        token = httpx.get(platform.base_url + "/v1/BCE-BEARER/token", auth=signer, timeout=30).json()["token"]
        waits: list[float] = []
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                started = time.monotonic()
                assert httpx.get(platform.base_url + "/healthz", timeout=30).status_code == 200
                waits.append(time.monotonic() - started)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            time.sleep(0.2)
            answer = httpx.post(platform.base_url + "/v1/chat/completions", timeout=60,
                                headers={"Authorization": f"Bearer {token}"},
                                json={"model": "Tiny-Chat", "messages": [{"role": "user", "content": "hi"}],
                                      "response_format": {"type": "json_schema",
                                                          "json_schema": {"name": "s", "schema": SCHEMA}}})
            time.sleep(0.3)
        finally:
            done.set()
            prober.join()
        assert answer.status_code < 500, answer.text[:300]
        assert len(waits) >= 5 and max(waits) < 1.0, waits
    finally:
        daemon.stop_daemon(daemon_data_dir, force=True)

"""The probe's high finding: a schema pattern that makes Python's ``re`` backtrack froze the daemon's
event loop (``/healthz`` stalled 16.4 s three times for one call with a 28-character answer). Each
of the four patterns, against a live platform on a real socket, with an answer that almost matches
it (40 characters: 2^40 steps for a backtracking engine), while another client polls ``/healthz``:
every call is answered (a schema miss after its resamples), and ``/healthz`` keeps its latency."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest
from pattern_doubles import HOSTILE, HostileLlama, HostileRegistry, hostile_schema
from platform_helpers import Signer, make_settings

from qfnb.local.engines.llama.link import transport
from qfnb.local.server.app import create_app
from tests.fakes.serving import serve

#: far past what Python's re can check (each more character doubles its time; 28 took 16.4 s)
LENGTH = 40


@pytest.mark.serial
def test_no_hostile_pattern_holds_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = HostileRegistry(HostileLlama(LENGTH))
    app = create_app(make_settings(tmp_path), registry)  # the daemon's app, served on a real socket below
    monkeypatch.setattr(transport, "client", lambda: registry.client)
    with serve(app, lifespan="on") as url, httpx.Client(base_url=url, timeout=60) as http:
        token = http.get("/v1/BCE-BEARER/token", params={"expireInSeconds": 600}, auth=Signer()).json()["token"]
        headers = {"authorization": f"Bearer {token}"}

        def hostile(pattern: str) -> httpx.Response:  # the near miss of ``pattern``, checked against it
            with httpx.Client(base_url=url, timeout=60) as own:
                return own.post("/v2/chat/completions", headers=headers, json={
                    "model": "tiny-chat", "messages": [{"role": "user", "content": pattern}],
                    "response_format": {"type": "json_schema", "json_schema": {
                        "name": "probe", "schema": hostile_schema(pattern)}}})

        # a first schema call imports jsonschema (seconds on a loaded machine: the daemon starts that in a
        # thread as it starts, and a call that comes sooner waits for it): not what is measured here
        assert hostile(r"^(\d+)+$").status_code == 200
        latencies: list[float] = []
        with concurrent.futures.ThreadPoolExecutor(len(HOSTILE)) as pool:
            calls = [pool.submit(hostile, pattern) for pattern in HOSTILE]
            while not all(c.done() for c in calls) or len(latencies) < 20:
                begun = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - begun)
                time.sleep(0.02)
        answers = [c.result() for c in calls]
    for pattern, answer in zip(HOSTILE, answers, strict=True):
        assert answer.status_code == 200, answer.text
        refusal = answer.json()["choices"][0]["message"]["refusal"]
        assert "pattern" in refusal and "does not match" in refusal, (pattern, refusal)
    assert registry.llama and max(latencies) < 1.0, f"/healthz took up to {max(latencies):.2f} s"

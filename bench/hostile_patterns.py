"""The probe's hostile schema patterns on a live platform (issue 70 §1): ``/healthz`` latency while
one call per pattern is answered with its near miss, its pattern checked with Python's ``re`` (the
baseline: ``jsonschema``'s own validator, as before) and with RE2 (:mod:`qfnb.protocol.schema.regex`),
in the same run.

    .venv/bin/python bench/hostile_patterns.py [--length 22]

Each more character of the near miss doubles the baseline's time (the probe measured 16.4 s at 28);
RE2's is linear. Prints, per engine, the longest ``/healthz`` round trip and each call's time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "local"))
sys.path.insert(0, str(ROOT))

from _common import load_average, log_to_stdout  # noqa: E402
from pattern_doubles import HOSTILE, hostile_app, hostile_schema  # noqa: E402
from platform_helpers import Signer  # noqa: E402

from qfnb.local.engines.llama import answer_check  # noqa: E402
from qfnb.local.engines.llama.link import transport  # noqa: E402
from qfnb.protocol.schema import regex as schema_regex  # noqa: E402
from tests.fakes.serving import serve  # noqa: E402

log = logging.getLogger("bench.hostile_patterns")


def _backtracking(schema: Any) -> Any:
    """jsonschema's own validator class (patterns run with Python's re): the code before the fix."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    return validator_for(schema, default=Draft202012Validator)


def run(length: int, engine: str) -> dict[str, Any]:
    answer_check.validator_for = schema_regex.validator_for if engine == "re2" else _backtracking  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        app, registry = hostile_app(Path(tmp), length)
        transport.client = lambda: registry.client  # type: ignore[assignment]
        with serve(app, lifespan="on") as url, httpx.Client(base_url=url, timeout=600) as http:
            token = http.get("/v1/BCE-BEARER/token", params={"expireInSeconds": 600}, auth=Signer()).json()["token"]
            headers = {"authorization": f"Bearer {token}"}

            def call(pattern: str) -> float:
                begun = time.perf_counter()
                with httpx.Client(base_url=url, timeout=600) as own:
                    own.post("/v2/chat/completions", headers=headers, json={
                        "model": "tiny-chat", "messages": [{"role": "user", "content": pattern}],
                        "response_format": {"type": "json_schema", "json_schema": {
                            "name": "probe", "schema": hostile_schema(pattern)}}}).raise_for_status()
                return time.perf_counter() - begun

            call(r"^[a-z]+$")  # warm: the imports of a first schema call
            latencies: list[float] = []
            with concurrent.futures.ThreadPoolExecutor(len(HOSTILE)) as pool:
                calls = {pattern: pool.submit(call, pattern) for pattern in HOSTILE}
                while not all(c.done() for c in calls.values()) or len(latencies) < 20:
                    begun = time.perf_counter()
                    http.get("/healthz").raise_for_status()
                    latencies.append(time.perf_counter() - begun)
                    time.sleep(0.02)
            return {"healthz_max_s": max(latencies), "healthz_median_s": sorted(latencies)[len(latencies) // 2],
                    "calls_s": {p: round(c.result(), 3) for p, c in calls.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=22, help="characters of the near miss (default 22)")
    args = parser.parse_args()
    log_to_stdout()
    logging.getLogger("qfnb.local.engines.llama.answer_check").setLevel(logging.ERROR)
    log.info("load before: %s", load_average())
    found = {engine: run(args.length, engine) for engine in ("re", "re2")}
    for engine, figures in found.items():
        log.info("%-4s /healthz max %.3f s, median %.3f s; calls: %s", engine, figures["healthz_max_s"],
                 figures["healthz_median_s"], figures["calls_s"])
    log.info("ratio of the longest /healthz (re / re2): %.0f×",
             found["re"]["healthz_max_s"] / max(found["re2"]["healthz_max_s"], 1e-6))
    log.info("load after: %s", load_average())


if __name__ == "__main__":
    main()

"""``Dataset.stress_test`` against the real local engine, checked against bench/serving.py's own
measure in the same run.

    .venv/bin/python bench/stress_local.py [--concurrency 1,4,8] [--tokens 64] [--per-user 2] [--rounds 2]

Starts ``qfnb serve`` on a temporary data dir (llama-server, Qwen2.5-Coder-0.5B-Instruct). For each
concurrency, in interleaved rounds (which side goes first alternates by round): bench/serving.py's
aggregate tok/s (``concurrent``: raw SSE over httpx, streamed pieces / wall time) and a stress-test
round through qfnb's client (``users`` users, ``per_user`` requests each: OTPS = completion tokens /
wall time, plus TTFT and latency percentiles). Prints the medians and their ratio (stress /
serving; the same engine and prompts, so it should be ~1 within the noise of a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import log_to_stdout  # noqa: E402
from serving import PROMPT, concurrent, start_platform  # noqa: E402

from qfnb.local.engines.llama_server import default_slots  # noqa: E402

log = logging.getLogger("bench.stress")
ENDPOINT = "qwen2_5_coder_0_5b_instruct"


def point_client_at(data_dir: Path, base: str) -> None:
    """qfnb's client env: the platform's URL and the data dir's keys."""
    creds = json.loads((data_dir / "credentials.json").read_text())
    os.environ.update({"QIANFAN_BASE_URL": base, "QIANFAN_CONSOLE_API_BASE_URL": base, "QIANFAN_IAM_BASE_URL": base,
                       "QIANFAN_AK": creds["api_key"], "QIANFAN_SK": creds["secret_key"],
                       "QIANFAN_ACCESS_KEY": creds["access_key"], "QIANFAN_SECRET_KEY": creds["iam_secret_key"]})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--tokens", type=int, default=64, help="output tokens per request")
    ap.add_argument("--per-user", type=int, default=2, help="requests each stress-test user sends")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--slots", type=int, default=default_slots())
    args = ap.parse_args()
    users = [int(u) for u in args.concurrency.split(",")]
    log_to_stdout()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="qfnb-bench-stress-"))
    proc, side = start_platform(work / "data", args.slots, None)
    try:
        base = side.url.split("/rpc/")[0]
        point_client_at(work / "data", base)
        from qfnb.dataset import Dataset

        hyper = {"temperature": 0.0001, "max_output_tokens": args.tokens}
        asyncio.run(concurrent(side, 1, args.tokens, "warm"))  # loads the model
        serving: dict[int, list[float]] = {u: [] for u in users}
        stress: dict[int, list[dict[str, float]]] = {u: [] for u in users}
        for r in range(args.rounds):
            for u in users:
                def serve_side(r: int = r, u: int = u) -> None:
                    serving[u].append(asyncio.run(concurrent(side, u, args.tokens, f"s{r}-{u}")))

                def stress_side(r: int = r, u: int = u) -> None:
                    prompts = [{"prompt": PROMPT.format(n=f"t{r}-{u}-{i}")} for i in range(u * args.per_user)]
                    result = Dataset.create_from_pyobj(prompts).stress_test(
                        users=u, endpoint=ENDPOINT, model_type="Completions", hyperparameters=hyper)
                    stress[u].append(result.to_pandas().iloc[0].to_dict())

                # alternate which side goes first: a shared machine's speed drifts within minutes
                for measure in (serve_side, stress_side) if r % 2 == 0 else (stress_side, serve_side):
                    measure()
                log.info("round %d, %d users: serving %.1f tok/s, stress test OTPS %.1f (TTFT p50 %.0f ms, "
                         "latency p50 %.2f s, %d errors)", r, u, serving[u][-1], stress[u][-1]["otps"],
                         1000 * stress[u][-1]["ttft_p50"], stress[u][-1]["latency_p50"], stress[u][-1]["errors"])
        log.info("users  serving tok/s  stress OTPS  stress/serving  QPS  TTFT p50 ms  latency p50/p90/p99 s")
        for u in users:
            med = {k: statistics.median(float(row[k]) for row in stress[u]) for k in stress[u][0]}
            ref = statistics.median(serving[u])
            log.info("%5d  %13.1f  %11.1f  %14.2f  %4.2f  %11.0f  %.2f / %.2f / %.2f", u, ref, med["otps"],
                     med["otps"] / ref, med["qps"], 1000 * med["ttft_p50"], med["latency_p50"], med["latency_p90"],
                     med["latency_p99"])
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``Dataset.stress_test`` against the real local engine, checked against bench/serving.py's own
measure in the same run.

    .venv/bin/python bench/stress_local.py [--concurrency 1,4,8] [--tokens 64] [--per-user 2] [--rounds 2]

Starts ``qfnb serve`` on a temporary data dir (llama-server, Qwen2.5-Coder-0.5B-Instruct). For each
concurrency, in interleaved rounds (which side goes first alternates by round), the same load twice:
``users`` users each sending ``per_user`` requests one after another,

- through bench/serving.py's client (``Side.one``: raw SSE over httpx, a token per streamed piece);
- as a ``Dataset.stress_test`` round through qfnb's client (tokens from the answers' ``usage``).

Both sides are reduced by the same two definitions: OTPS as the official SDK's report defines it
(mean output tokens per request / mean request latency: one user's stream rate) and the aggregate
(all output tokens / the round's wall time: what bench/serving.py's ``concurrent`` prints). Prints
the medians and the ratios stress / serving for each (the same engine and load, so ~1 within the
noise of a shared machine), with the mean TTFT and tokens per request of each side.
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
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import log_to_stdout  # noqa: E402
from serving import PROMPT, Side, concurrent, start_platform  # noqa: E402

from qfnb.local.engines.llama.process.command import default_slots  # noqa: E402

log = logging.getLogger("bench.stress")
ENDPOINT = "qwen2_5_coder_0_5b_instruct"


def point_client_at(data_dir: Path, base: str) -> None:
    """qfnb's client env: the platform's URL and the data dir's keys."""
    creds = json.loads((data_dir / "credentials.json").read_text())
    os.environ.update({"QIANFAN_BASE_URL": base, "QIANFAN_CONSOLE_API_BASE_URL": base, "QIANFAN_IAM_BASE_URL": base,
                       "QIANFAN_AK": creds["api_key"], "QIANFAN_SK": creds["secret_key"],
                       "QIANFAN_ACCESS_KEY": creds["access_key"], "QIANFAN_SECRET_KEY": creds["iam_secret_key"]})


async def serving_round(side: Side, users: int, per_user: int, tokens: int, tag: str) -> dict[str, float]:
    """bench/serving.py's measure of the stress test's load: ``users`` users, ``per_user`` requests each."""
    samples: list[tuple[float, float, int]] = []  # (ttft, latency, tokens) per request
    async with httpx.AsyncClient(timeout=600) as client:
        start = time.perf_counter()

        async def user(k: int) -> None:
            for i in range(per_user):
                first, secs, n = await side.one(client, PROMPT.format(n=f"{tag}-{k}-{i}"), tokens)
                samples.append((first, first + secs, n + 1))

        await asyncio.gather(*(user(k) for k in range(users)))
        wall = time.perf_counter() - start
    return reduce(samples, wall)


def reduce(samples: list[tuple[float, float, int]], wall: float) -> dict[str, float]:
    """The two definitions, TTFT and tokens per request from (ttft, latency, tokens) per request."""
    n = len(samples)
    return {"otps": sum(t for _, _, t in samples) / sum(lat for _, lat, _ in samples),
            "total_otps": sum(t for _, _, t in samples) / wall, "ttft_avg": sum(f for f, _, _ in samples) / n,
            "latency_avg": sum(lat for _, lat, _ in samples) / n, "tokens": sum(t for _, _, t in samples) / n}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--tokens", type=int, default=64, help="output tokens per request")
    ap.add_argument("--per-user", type=int, default=2, help="requests each user sends, one after another")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--slots", type=int, default=default_slots())
    ap.add_argument("--stress-transport", choices=("aiohttp", "httpx"), default="aiohttp",
                    help="what carries the stress test's requests (httpx: the serving client's HTTP stack)")
    args = ap.parse_args()
    if args.stress_transport == "httpx":
        use_httpx_transport()
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
        Dataset.create_from_pyobj([{"prompt": PROMPT.format(n="warm")}]).stress_test(  # qfnb's token, imports
            users=1, endpoint=ENDPOINT, model_type="Completions", hyperparameters=hyper)
        serving: dict[int, list[dict[str, float]]] = {u: [] for u in users}
        stress: dict[int, list[dict[str, float]]] = {u: [] for u in users}
        for r in range(args.rounds):
            for u in users:
                def serve_side(r: int = r, u: int = u) -> None:
                    serving[u].append(asyncio.run(serving_round(side, u, args.per_user, args.tokens, f"s{r}-{u}")))

                def stress_side(r: int = r, u: int = u) -> None:
                    prompts = [{"prompt": PROMPT.format(n=f"t{r}-{u}-{i}")} for i in range(u * args.per_user)]
                    result = Dataset.create_from_pyobj(prompts).stress_test(
                        users=u, endpoint=ENDPOINT, model_type="Completions", hyperparameters=hyper)
                    row = result.to_pandas().iloc[0].to_dict()
                    stress[u].append({**row, "tokens": row["output_tokens"] / max(row["requests"] - row["errors"], 1)})

                # alternate which side goes first: a shared machine's speed drifts within minutes
                for measure in (serve_side, stress_side) if r % 2 == 0 else (stress_side, serve_side):
                    measure()
                a, b = serving[u][-1], stress[u][-1]
                log.info("round %d, %d users: OTPS serving %.2f stress %.2f | total serving %.2f stress %.2f tok/s | "
                         "TTFT avg serving %.2f stress %.2f s | tokens/request %.1f, %.1f | %d errors | load %s", r, u,
                         a["otps"], b["otps"], a["total_otps"], b["total_otps"], a["ttft_avg"], b["ttft_avg"],
                         a["tokens"], b["tokens"], b["errors"], load())
        log.info("users  OTPS serving  stress  ratio | total tok/s serving  stress  ratio | TTFT avg s serving  "
                 "stress | latency avg s serving  stress")
        for u in users:
            a = {k: statistics.median(row[k] for row in serving[u]) for k in serving[u][0]}
            b = {k: statistics.median(float(row[k]) for row in stress[u]) for k in a}
            log.info("%5d  %12.2f  %6.2f  %5.2f | %19.2f  %6.2f  %5.2f | %18.2f  %6.2f | %21.2f  %6.2f", u,
                     a["otps"], b["otps"], b["otps"] / a["otps"], a["total_otps"], b["total_otps"],
                     b["total_otps"] / a["total_otps"], a["ttft_avg"], b["ttft_avg"], a["latency_avg"],
                     b["latency_avg"])
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


def use_httpx_transport() -> None:
    """qfnb's clients send through httpx (as the serving side does) instead of aiohttp: a diagnostic
    that tells the HTTP stack's share of a difference between the sides from the rest of qfnb's path."""
    from qfnb._core.http import client
    from qfnb._core.transport.httpx import HttpxTransport

    client.default_transport = lambda config: HttpxTransport(max_connections=max(1, config.max_connections))


def load() -> str:
    """The machine's 1-minute load average (a shared machine: the figures' context)."""
    return f"{os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    sys.exit(main())

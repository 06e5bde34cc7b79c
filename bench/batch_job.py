"""A platform batch job vs bare llama-server vs client-side ``batch_do``, in one run (issue 22).

    .venv/bin/python bench/batch_job.py [--prompts 256] [--tokens 64] [--slots N]
    .venv/bin/python bench/batch_job.py --engine-url http://127.0.0.1:8080   # an engine already running

Same binary, model (Qwen2.5-Coder-0.5B-Instruct), flags and slot count on every side, measured one
after the other. Prints aggregate decode tok/s (completion tokens / wall seconds) of:

1. bare ``llama-server`` driven at its best concurrency (slots, 2 x slots by default);
2. the platform's batch job (``CreateBatchInferenceTask``; wall from create to Done), target >= 90 % of 1;
3. client-side ``ChatCompletion.batch_do`` against the same platform;

after a warm-up round on both engines, in ``--rounds`` interleaved rounds (medians compared: a fresh
engine speeds up over its first minutes, which favours whichever side is measured later);

and the job runner's own bookkeeping per row (parse, journal, answer row, fsync) measured on an
engine that answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "local"))

from _common import log_to_stdout, serve_bare, serve_platform  # noqa: E402

from qfnb.local.engines import DEFAULT_CHAT  # noqa: E402
from qfnb.local.engines.llama.process.command import default_slots  # noqa: E402

log = logging.getLogger("bench.batch_job")
TOPICS = ["binary search trees", "HTTP caching", "Python generators", "SQL joins", "TCP congestion control",
          "garbage collection", "unit testing", "regular expressions"]


def prompts(n: int) -> list[str]:
    return [f"Request {i}: explain {TOPICS[i % len(TOPICS)]} to a new engineer in a few paragraphs." for i in range(n)]


# ---- 1. bare engine -----------------------------------------------------------------------------


async def drive(url: str, texts: list[str], tokens: int, concurrency: int, model: str) -> float:
    """Aggregate completion tok/s of ``texts`` sent ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    # pooled as the platform pools its engine connections (forgotten at 2 s idle, before the
    # engine's 5 s), and a request the engine closed before answering is sent once more, as the
    # platform does (qfnb.local.engines.llama.engine)
    limits = httpx.Limits(max_connections=concurrency + 4, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=900, limits=limits) as client:
        async def one(text: str) -> int:
            body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": tokens,
                    "temperature": 0.0001, "top_p": 0.8, "min_p": 0.0, "repeat_penalty": 1.0, "stream": True,
                    "stream_options": {"include_usage": True}}  # as the platform sends it
            async with gate:
                for attempt in (1, 2):
                    used, answered = 0, False
                    try:
                        async with client.stream("POST", url, json=body) as resp:
                            answered = True
                            async for line in resp.aiter_lines():
                                if line.startswith("data: {"):
                                    usage = json.loads(line[6:]).get("usage") or {}
                                    used = int(usage.get("completion_tokens") or used)
                        return used
                    except httpx.RemoteProtocolError:
                        if answered or attempt == 2:
                            raise
                        log.info("bare engine closed a connection before answering; sending again")
            return 0

        start = time.perf_counter()
        total = sum(await asyncio.gather(*(one(t) for t in texts)))
        return total / (time.perf_counter() - start)


def start_bare(args: argparse.Namespace, work: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    """The bare engine: ``--engine-url``, or llama-server with exactly the flags the platform uses."""
    if args.engine_url:
        return None, args.engine_url.rstrip("/")
    return serve_bare(args.slots, work / "bare")


def concurrencies(args: argparse.Namespace) -> list[int]:
    return sorted({int(u.replace("x", "")) * (args.slots if "x" in u else 1) for u in args.bare_concurrency.split(",")})


def bare(args: argparse.Namespace, url: str, texts: list[str], users: int) -> float:
    return asyncio.run(drive(url + "/v1/chat/completions", texts, args.tokens, users, args.remote_model))


# ---- 2 and 3. the platform --------------------------------------------------------------------


def start_platform(args: argparse.Namespace, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    env = {"QFNB_ENGINE_SLOTS": str(args.slots),
           # the platform's engine stays up while the bare one is measured (it would stop after
           # 10 idle minutes, and the job would then start a cold one)
           "QFNB_ENGINE_IDLE_SECONDS": "86400"}
    if args.engine_url:
        env["QFNB_ENGINES"] = json.dumps({DEFAULT_CHAT: {"base_url": args.engine_url.rstrip("/") + "/v1",
                                                         "model": args.remote_model}})
    return serve_platform(data_dir, data_dir.parent / "serve.log", **env)


def config_for(base: str, creds: dict[str, str]) -> Any:
    from qfnb._core.config import Config

    return Config.from_env({}, base_url=base, console_api_base_url=base, iam_base_url=base, bos_endpoint=base + "/bos",
                           ak=creds["api_key"], sk=creds["secret_key"], access_key=creds["access_key"],
                           secret_key=creds["iam_secret_key"])


def job(cfg: Any, texts: list[str], tokens: int) -> tuple[float, dict[str, Any]]:
    from qfnb.resources.batch_job import BatchJob

    start = time.perf_counter()
    handle = BatchJob.submit(texts, model=DEFAULT_CHAT, inference_params={"max_output_tokens": tokens,
                                                                          "temperature": 0.0001}, config=cfg)
    state = handle.wait(interval=0.1)
    wall = time.perf_counter() - start
    if state.status != "Done" or state.failed:
        raise RuntimeError(f"the batch job ended {state.status} with {state.failed} failed rows")
    return state.output_tokens / wall, state.view


def client_batch(cfg: Any, texts: list[str], tokens: int, workers: int) -> float:
    from qfnb.resources import ChatCompletion

    chat = ChatCompletion(model=DEFAULT_CHAT, config=cfg)
    start = time.perf_counter()
    results = chat.batch_do([[{"role": "user", "content": t}] for t in texts], worker_num=workers,
                            max_output_tokens=tokens, temperature=0.0001).results()
    wall = time.perf_counter() - start
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise RuntimeError(f"client batch_do: {len(failed)} failed, e.g. {failed[0]}")
    return sum(int(r["usage"]["completion_tokens"]) for r in results) / wall


# ---- 4. the runner's bookkeeping ----------------------------------------------------------------


def bookkeeping(work: Path, rows: int) -> float:
    """Microseconds per row of the runner on an engine that answers at once."""
    from qfnb.local.domain.batch import rows as batch_rows
    from qfnb.local.domain.batch.runner import Paths, Runner
    from qfnb.local.engines.base import Delta
    from qfnb.local.engines.gate import Gate

    class Instant:
        name, gate = "instant", Gate("instant", 16, 0)

        can_call_tools = False

        async def generate(self, ask: Any) -> Any:
            with self.gate.admit():
                yield Delta("answer", "normal", 3, 1)

    work.mkdir(parents=True, exist_ok=True)
    paths = Paths(work / "in.jsonl", work / "out.jsonl", work / "err.jsonl", work / "journal.log")
    paths.input.write_text("".join(json.dumps({"custom_id": f"r{i}", "body": {"messages": [
        {"role": "user", "content": f"row {i}"}]}}) + "\n" for i in range(rows)))
    engine = Instant()
    runner = Runner(paths, batch_rows.Standing(bytearray(rows)), model=None, params={},
                    engine_for=lambda _: engine, save=lambda *_: None, stopped=lambda: False)  # type: ignore[arg-type,return-value]
    start = time.perf_counter()
    assert asyncio.run(runner.run()) == "done" and runner.progress.done == rows
    return (time.perf_counter() - start) / rows * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=default_slots())
    ap.add_argument("--rounds", type=int, default=2,
                    help="measure every side this many times, interleaved; the medians are compared")
    ap.add_argument("--engine-url", help="an OpenAI-compatible engine already running (base URL without /v1)")
    ap.add_argument("--remote-model", default=DEFAULT_CHAT, help="the engine's model name (with --engine-url)")
    ap.add_argument("--bookkeeping-rows", type=int, default=5000)
    ap.add_argument("--bare-concurrency", default="1x,2x",
                    help="concurrencies to drive the bare engine at: N or Nx (times the slots), comma-separated")
    args = ap.parse_args()
    log_to_stdout()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="qfnb-bench-batch-"))
    texts = prompts(args.prompts)
    per_row = bookkeeping(work / "bookkeeping", args.bookkeeping_rows)
    log.info("runner bookkeeping: %.0f us per row", per_row)
    bare_proc, bare_url = start_bare(args, work)
    proc, base, creds = start_platform(args, work / "data")
    bare_rates: dict[int, list[float]] = {users: [] for users in concurrencies(args)}
    job_rates: list[float] = []
    client_rates: list[float] = []
    views: list[dict[str, Any]] = []
    try:
        cfg = config_for(base, creds)
        # Warm-up: both engines answer a full round of slots x 2 prompts first. A fresh llama-server
        # runs slower for its first minutes (measured: 23.9 then 26.6 tok/s at one concurrency), so a
        # side measured first would lose to one measured later; the rounds interleave for the same reason.
        warm = prompts(2 * args.slots)
        bare(args, bare_url, warm, args.slots)
        client_batch(cfg, warm, args.tokens, args.slots)
        for n in range(1, args.rounds + 1):
            for users, rates in bare_rates.items():
                rates.append(bare(args, bare_url, texts, users))
                log.info("round %d: bare engine, %d concurrent: %.1f tok/s", n, users, rates[-1])
            rate, view = job(cfg, texts, args.tokens)
            job_rates.append(rate)
            views.append(view)
            log.info("round %d: platform batch job: %.1f tok/s (%d rows, %.1f s in the runner)", n, rate,
                     view["totalCount"], view["runSeconds"])
            client_rates.append(client_batch(cfg, texts, args.tokens, args.slots))
            log.info("round %d: client-side batch_do: %.1f tok/s", n, client_rates[-1])
    finally:
        proc.terminate()
        proc.wait(30)
        if bare_proc is not None:
            bare_proc.terminate()
            bare_proc.wait(30)
    best_users, bare_rate = max(((u, statistics.median(r)) for u, r in bare_rates.items()), key=lambda x: x[1])
    job_rate, client_rate = statistics.median(job_rates), statistics.median(client_rates)
    log.info("%d prompts, %d tokens each at most, %d slots, %d rounds (medians)", args.prompts, args.tokens,
             args.slots, args.rounds)
    for users, rates in bare_rates.items():
        log.info("bare llama-server, %2d concurrent:     %.1f tok/s  (rounds: %s)", users, statistics.median(rates),
                 ", ".join(f"{r:.1f}" for r in rates))
    log.info("bare llama-server (best: %d concurrent): %.1f tok/s", best_users, bare_rate)
    log.info("platform batch job:                  %.1f tok/s -> %.1f %% of bare (target >= 90 %%); "
             "rounds: %s; %d rows pre-empted, %d retried", job_rate, 100 * job_rate / bare_rate,
             ", ".join(f"{r:.1f}" for r in job_rates), sum(v.get("preemptedRequests", 0) for v in views),
             sum(v.get("retriedRequests", 0) for v in views))
    log.info("client-side batch_do via platform:   %.1f tok/s -> %.1f %% of bare (rounds: %s)", client_rate,
             100 * client_rate / bare_rate, ", ".join(f"{r:.1f}" for r in client_rates))
    log.info("job / client batch_do = %.2fx", job_rate / client_rate)
    log.info("runner bookkeeping per row (instant engine, %d rows): %.0f us", args.bookkeeping_rows, per_row)
    return 0


if __name__ == "__main__":
    sys.exit(main())

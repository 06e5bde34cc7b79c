"""Fault storm: a batch loses nothing when a fifth of its calls fail, and a quota slows it down.

Usage: ``.venv/bin/python bench/fault_storm.py [--n 10000] [--workers 50] [--latency-ms 20] [--repeat 1]``

Against the fake Qianfan server (``tests.fakes.cloud``, on 127.0.0.1), with qfnb's default
settings, one run measures:

1. the same ``abatch_do`` of ``n`` distinct prompts with no faults (the baseline), then with
   20% of the calls failing — HTTP 429 (``Retry-After: 0``), 500, 503, body codes 18 and
   336100, and dropped connections, in turn at random — and prints lost and duplicated
   results (each answer must echo its own prompt), calls re-queued, and the wall-time ratio
   (target <= 1.5x), with the process CPU time of each run (client and fake server share the
   process: on a busy machine the CPU ratio is the steadier figure);
2. a quota: the server admits ``quota`` calls per second and answers code 18 (QPS limit)
   beyond it; lost results (target 0), the achieved rate against the quota, and the
   concurrency the batch settled at.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qfnb import ChatCompletion, QfResponse
from qfnb._core.config import Config
from tests.fakes.cloud import FakeQianfan, serve

STORM = ("429", "500", "503", "code:18", "code:336100", "drop")


def _config(url: str, fake: FakeQianfan) -> Config:
    return Config.from_env({}, base_url=url, ak=fake.ak, sk=fake.sk)


def _check(results: list[object], n: int) -> tuple[int, int]:
    """(lost, duplicated-or-misplaced) results: each answer must be its own prompt's echo."""
    lost = sum(1 for r in results if not isinstance(r, QfResponse))
    wrong = sum(1 for i, r in enumerate(results)
                if isinstance(r, QfResponse) and not str(r["result"]).endswith(f": prompt {i}"))
    return lost, wrong


def _run(chat: ChatCompletion, n: int, workers: int) -> tuple[float, float, list[object], object]:
    """Wall seconds, process CPU seconds (client and fake server together), results, stats."""
    prompts = [[{"role": "user", "content": f"prompt {i}"}] for i in range(n)]
    start, cpu = time.perf_counter(), time.process_time()
    future = chat.batch_do(prompts, worker_num=workers)
    results = list(future.results())
    return time.perf_counter() - start, time.process_time() - cpu, results, future.stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--quota", type=float, default=500.0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate the two runs this many times; the fastest of each is reported "
                         "(on a shared machine); lost/duplicated are summed over all runs")
    args = ap.parse_args()

    fake = FakeQianfan()
    fake.capture = False
    fake.latency = args.latency_ms / 1000
    with serve(fake) as url:
        fake.base_url = url
        chat = ChatCompletion(config=_config(url, fake))
        _run(chat, 200, args.workers)  # warm the pool and the token

        runs: dict[str, list[tuple[float, float, int, int]]] = {"no faults": [], "20% faults": []}
        for _ in range(max(1, args.repeat)):
            for name, rate in (("no faults", 0.0), ("20% faults", 0.2)):
                fake.fault_rate(rate, STORM, seed=1, retry_after="0")
                secs, cpu, res, run_stats = _run(chat, args.n, args.workers)
                runs[name].append((secs, cpu, *_check(res, args.n)))
                if rate:
                    stats = run_stats
        fake.fault_rate(0)
        print(f"fault storm: {args.n} prompts, {args.workers} workers, {args.latency_ms:.0f} ms server, "
              f"20% faults of {len(STORM)} kinds")
        best = {name: min(rs) for name, rs in runs.items()}
        for name, rs in runs.items():
            secs, cpu = best[name][:2]
            lost, wrong = sum(r[2] for r in rs), sum(r[3] for r in rs)
            print(f"  {name:<11} {secs:7.2f} s  {args.n / secs:7.0f} req/s  (CPU {cpu:5.2f} s)  lost {lost}  "
                  f"duplicated/misplaced {wrong}" + (f"  (best of {len(rs)})" if len(rs) > 1 else ""))
        ratio, cpu_ratio = (best["20% faults"][i] / best["no faults"][i] for i in (0, 1))
        print(f"  re-queued calls: {stats.retried}; lowest concurrency {stats.lowest_concurrency}; "  # type: ignore[attr-defined]
              f"wall time with faults / without: {ratio:.2f}x (target <= 1.5x); CPU {cpu_ratio:.2f}x")

        fake.admit_per_second(args.quota)
        n = int(args.quota * 15)
        quota_s, _, quota_res, qstats = _run(chat, n, args.workers)
        fake.admit_per_second(None)
        lost, wrong = _check(quota_res, n)
        print(f"quota: server admits {args.quota:.0f} calls/s; {n} prompts, {args.workers} workers")
        print(f"  {quota_s:.2f} s  {n / quota_s:.0f} req/s ({n / quota_s / args.quota:.0%} of the quota)  "
              f"lost {lost}  duplicated/misplaced {wrong}  re-queued {qstats.retried}  "  # type: ignore[attr-defined]
              f"concurrency: lowest {qstats.lowest_concurrency}, settled {qstats.concurrency}")  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()

"""Notebook-layer overhead: progress bar on vs off, and frontend messages during a training.

    .venv/bin/python bench/notebook_overhead.py [--items 20000] [--events 2000]

1. A batch of cheap items (100 µs of CPU each by default, far cheaper than any HTTP call, so
   the ratio is an upper bound) through ``Progress.on_result`` in widget mode vs no progress at all.
2. The real thing: ``ChatCompletion.abatch_do`` against the 0 ms fake server of
   ``batch_throughput.py`` with the widget progress bar vs ``progress=False``: ``--rounds``
   pairs, each pair in a random order; the overhead is the median of the per-pair ratios.
3. A simulated training emitting ``--events`` Contract 5 events in ~2 s into a
   ``TrainingDashboard``; comm messages are counted by patching ``comm.create_comm``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import time
from typing import Any

import comm
from comm.base_comm import BaseComm

log = logging.getLogger("bench.notebook")


class CountingComm(BaseComm):
    sent = 0

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        CountingComm.sent += 1


WORK_S = 100e-6


def work(i: int) -> bool:
    """~100 µs of CPU per item (a local HTTP round trip costs 10x more)."""
    end = time.perf_counter() + WORK_S
    while time.perf_counter() < end:
        pass
    return hashlib.sha256(str(i).encode()).digest()[0] != 0


def batch(n: int, progress: Any) -> float:
    t0 = time.perf_counter()
    if progress is not None:
        progress.on_start(n)
    for i in range(n):
        ok = work(i)
        if progress is not None:
            progress.on_result(i, ok)
    if progress is not None:
        progress.on_close()
    return time.perf_counter() - t0


def bench_progress(n: int, repeats: int = 5) -> tuple[float, float]:
    from qfnb.notebook.widgets.progress import Progress

    off = min(batch(n, None) for _ in range(repeats))
    on = min(batch(n, Progress(desc="bench", mode="widget")) for _ in range(repeats))
    return off, on


def bench_real_batch(n: int, rounds: int, workers: int = 50) -> tuple[list[float], list[float]]:
    """Seconds per ``abatch_do`` of ``n`` chat calls: progress off, widget bar on (interleaved)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from batch_throughput import start_server, stop_server

    from qfnb import ChatCompletion
    from qfnb._core.config import Config
    from qfnb._core.runtime import sync
    from qfnb.notebook.widgets.progress import Progress

    proc, url = start_server(0)
    try:
        chat = ChatCompletion(config=Config.from_env({}, base_url=url, ak="bench_ak", sk="bench_sk"))
        msgs = [[{"role": "user", "content": f"hello {i}"}] for i in range(n)]
        sync.run(chat.abatch_do(msgs[:workers], worker_num=workers, progress=False))  # warm
        off: list[float] = []
        on: list[float] = []
        order = random.Random(0)
        for _ in range(rounds):  # each round runs both, in a random order (paired samples)
            for times, progress in order.sample([(off, False), (on, True)], 2):
                bar = Progress(desc="bench", mode="widget") if progress else False
                t0 = time.perf_counter()
                results = sync.run(chat.abatch_do(msgs, worker_num=workers, progress=bar))
                times.append(time.perf_counter() - t0)
                assert not any(isinstance(r, Exception) for r in results)
    finally:
        stop_server(proc)
    return off, on


def bench_dashboard(events: int, seconds: float) -> tuple[int, float, int]:
    from qfnb.notebook.training.dashboard import TrainingDashboard

    dash = TrainingDashboard("bench")
    CountingComm.sent = 0
    t0 = time.perf_counter()
    curve: list[list[float]] = []
    for step in range(1, events + 1):
        curve.append([step, 1.0 / step])
        dash.handle_event(
            type(
                "E",
                (),
                {
                    "action_class": "TrainAction",
                    "action_id": "t",
                    "action_state": "Running",
                    "description": "",
                    "data": {"currentStep": step, "totalSteps": events, "lossCurve": list(curve[-200:])},
                },
            )()
        )
        time.sleep(seconds / events)
    dash.finish("succeeded")
    elapsed = time.perf_counter() - t0
    return CountingComm.sent, elapsed, dash.renders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--work-us", type=float, default=100.0, help="simulated work per batch item")
    parser.add_argument("--batch", type=int, default=3000, help="chat calls per real abatch_do run")
    parser.add_argument("--rounds", type=int, default=15, help="off/on pairs of the real batch")
    args = parser.parse_args()
    global WORK_S
    WORK_S = args.work_us * 1e-6
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    comm.create_comm = lambda *a, **k: CountingComm(*a, **k)  # count what a frontend would receive

    off, on = bench_progress(args.items)
    log.info(
        "progress: %d items  off %.1f ms  on %.1f ms  overhead %.2f%%  (%.2f µs/item)",
        args.items,
        off * 1e3,
        on * 1e3,
        100 * (on - off) / off,
        1e6 * (on - off) / args.items,
    )
    import statistics

    off_runs, on_runs = bench_real_batch(args.batch, args.rounds)
    ratios = [b / a for a, b in zip(off_runs, on_runs, strict=True)]
    log.info(
        "abatch_do, %d calls to a 0 ms server, %d pairs: progress off median %.0f ms, widget bar on median "
        "%.0f ms -> overhead %.2f%% (median of per-pair ratios; quartiles %.2f%% .. %.2f%%)",
        args.batch, args.rounds, statistics.median(off_runs) * 1e3, statistics.median(on_runs) * 1e3,
        100 * (statistics.median(ratios) - 1), *(100 * (q - 1) for q in statistics.quantiles(ratios, n=4)[::2]),
    )
    sent, elapsed, renders = bench_dashboard(args.events, args.seconds)
    log.info(
        "dashboard: %d events in %.2f s -> %d redraws, %d comm messages (%.1f msg/s)",
        args.events,
        elapsed,
        renders,
        sent,
        sent / elapsed,
    )


if __name__ == "__main__":
    main()

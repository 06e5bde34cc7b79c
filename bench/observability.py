"""What counting and tracing every call costs the platform's serving (issue 56): the same app with and
without :class:`~qfnb.local.server.middleware.metrics.Observation` (counters, histograms, the span written to the
data dir's trace table, written within the round), in one run, alternating which side goes first.

    .venv/bin/python bench/observability.py [--calls 100] [--rounds 30] [--concurrency 8]

The engine is the tests' in-process double (it answers at once), so the figure is the worst case:
the platform's own per-call work is all there is to slow down; a real engine's decode time dilutes
it further. Each round runs both sides back to back (which goes first alternates), so a round's
ratio compares two runs under the same load. Prints the ratio of calls/s and of calls per CPU
second of the process (what the platform's own work costs, steadier than wall time when other
processes share the cores): the median of the rounds' ratios (target >= 0.98) with their spread
(quartiles, min-max), the ratio of each side's best tenth of rounds per CPU second (another
process's work only ever slows a round, so the best rounds are the least disturbed), the CPU per
call it adds, the best round of each side and a ``/metrics`` scrape's time. Each side's round
starts from a collected heap (``gc.collect()``), so neither pays for the other's garbage; what the
warm-up left (modules, both apps: about 70,000 objects) is frozen out of the collector
(``gc.freeze()``), so a full collection, about 20 ms once every few thousand calls that lands on
whichever side's call set it off, does not swing a round's ratio.

``--opcodes N`` counts instead the Python bytecode instructions each side runs for ``N`` calls (one
at a time, ``sys.settrace``; the trace writer's thread included): a count, not a time, the same
on a quiet machine and a loaded one. It leaves out what runs in C (SQLite, JSON, locks), so it
complements the times rather than replacing them; it prints the ratio and the instructions a call
adds, in qfnb's own code and in all.

``--alternate N`` times instead each call on its own, the two sides' calls made one at a time in
turn (N pairs; which side goes first alternates; the same kind of call, whole or streamed, in each
pair): two calls a millisecond apart see the same machine, so another process's load slows both
alike and the paired ratio holds steady where whole rounds' CPU times do not. The trace writer's
thread is held back and its batches (every ``--block`` spans, 100) are written in the observed
side's time. Prints the ratio of the sides' CPU per call over all N pairs and the median and
quartiles of the blocks' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests" / "local")) if p not in sys.path]

from platform_doubles import FakeRegistry  # noqa: E402
from platform_helpers import Signer, make_settings  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from bench._common import load_average  # noqa: E402
from qfnb.local.domain.records import traces  # noqa: E402
from qfnb.local.server.app import create_app  # noqa: E402

ASK = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hello there, how are you today"}]}


async def _rate(app: Starlette, calls: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, calls per CPU second of this process: every thread, the trace writer's too)."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        token = (await client.get("/v1/BCE-BEARER/token", auth=Signer())).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        left = calls

        async def user() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                stream = left % 2 == 0  # half streamed, half whole
                reply = await client.post("/v2/chat/completions", json={**ASK, "stream": stream}, headers=headers)
                assert reply.status_code == 200, reply.text

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        # the spans still queued are written inside the measured time: the trace writer's work counts
        # against the side that made it, not the round after it
        app.state.platform.meter.sink.flush()
        return calls / (time.perf_counter() - start), calls / (time.process_time() - cpu)


async def _alternate(apps: dict[str, Starlette], pairs: int, block: int) -> tuple[dict[str, float], list[float]]:
    """(CPU seconds each side spent in all, each block's with/without ratio of calls per CPU second),
    the sides' calls made one at a time in turn, each timed alone."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, tuple[httpx.AsyncClient, dict[str, str]]] = {}
        for side, app in apps.items():
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
            client = await stack.enter_async_context(httpx.AsyncClient(transport=transport,
                                                                       base_url="http://127.0.0.1"))
            token = (await client.get("/v1/BCE-BEARER/token", auth=Signer())).json()["token"]
            clients[side] = client, {"Authorization": f"Bearer {token}"}
        sink = apps["observed"].state.platform.meter.sink
        total = dict.fromkeys(apps, 0.0)
        spent = dict.fromkeys(apps, 0.0)
        ratios: list[float] = []
        for n in range(pairs):
            ask = {**ASK, "stream": n % 4 < 2}  # half streamed, half whole; each side first every other pair
            for side in sorted(apps, reverse=n % 2 == 1):
                client, headers = clients[side]
                cpu = time.process_time()
                reply = await client.post("/v2/chat/completions", json=ask, headers=headers)
                if side == "observed" and (n + 1) % block == 0:
                    sink.flush()  # the writer's batch, in the side that made it
                spent[side] += time.process_time() - cpu
                assert reply.status_code == 200, reply.text
            if (n + 1) % block == 0:
                ratios.append(spent["bare"] / spent["observed"])
                for side in apps:
                    total[side] += spent[side]
                    spent[side] = 0.0
        return total, ratios


def _opcodes(app: Starlette, calls: int) -> collections.Counter[bool]:
    """Bytecode instructions run for ``calls`` calls, by whether qfnb's own code ran them."""
    counted: collections.Counter[bool] = collections.Counter()
    own = str(ROOT / "qfnb")

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            counted[frame.f_code.co_filename.startswith(own)] += 1
        return tracer

    sys.settrace(tracer)
    threading.settrace(tracer)
    try:
        asyncio.run(_rate(app, calls, 1))
    finally:
        sys.settrace(None)
        threading.settrace(None)
    return counted


def _count_opcodes(apps: dict[str, Starlette], calls: int) -> None:
    found = {side: _opcodes(app, calls) for side, app in apps.items()}
    per_call = {side: {k: v / calls for k, v in c.items()} for side, c in found.items()}
    every = {side: sum(c.values()) for side, c in per_call.items()}
    ours = {side: c.get(True, 0.0) for side, c in per_call.items()}
    print(f"bytecode instructions a call (one at a time, {calls} calls a side): without {every['bare']:.0f}, "
          f"with {every['observed']:.0f}: ratio {every['bare'] / every['observed']:.3f} "
          f"(+{every['observed'] - every['bare']:.0f} a call, of them +{ours['observed'] - ours['bare']:.0f} "
          "in qfnb's own code)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--opcodes", type=int, metavar="N", help="count bytecode instructions for N calls a side")
    ap.add_argument("--alternate", type=int, metavar="N", help="time N pairs of calls, the sides in turn")
    ap.add_argument("--block", type=int, default=100, help="pairs a block (--alternate): a ratio and a trace batch")
    args = ap.parse_args()
    if args.alternate:
        traces._WRITE_EVERY_S = 1e6  # the writer's thread held back: the bench writes each batch in its side's time
    with tempfile.TemporaryDirectory() as tmp:
        apps = {side: create_app(make_settings(Path(tmp) / side), FakeRegistry(), observe=side == "observed")
                for side in ("bare", "observed")}
        wall: dict[str, list[float]] = {side: [] for side in apps}
        per_cpu: dict[str, list[float]] = {side: [] for side in apps}
        for app in apps.values():
            asyncio.run(_rate(app, 40, args.concurrency))  # warm up (engines, imports)
        gc.collect()
        gc.freeze()  # what warm-up left (modules, both apps) is no full collection's work: see the module doc
        if args.opcodes:
            _count_opcodes(apps, args.opcodes)
            return 0
        if args.alternate:
            _report_alternate(apps, args.alternate, args.block)
            return 0
        for n in range(args.rounds):
            for side in sorted(apps, reverse=n % 2 == 1):  # each side goes first every other round
                gc.collect()  # each side starts from the same collector state: no collection owed by the other
                rate, cpu_rate = asyncio.run(_rate(apps[side], args.calls, args.concurrency))
                wall[side].append(rate)
                per_cpu[side].append(cpu_rate)
        registry = apps["observed"].state.platform.meter.registry
        scrape = min(_timed(lambda: generate_latest(registry)) for _ in range(20))
        apps["observed"].state.platform.meter.sink.flush()
    print(f"load: {load_average()}; {args.rounds} rounds of {args.calls} calls a side, {args.concurrency} at once")
    print(f"calls/s, best round: without metrics+tracing {max(wall['bare']):.1f}, with {max(wall['observed']):.1f}")
    print("ratio of calls/s, with/without: " + _spread(wall) + " (target >= 0.98)")
    print("ratio of calls per CPU second:  " + _spread(per_cpu) + " (steadier on a busy machine)")
    best = {side: _best_tenth(rates) for side, rates in per_cpu.items()}
    print(f"calls per CPU second, the best tenth of each side's rounds (the least disturbed: another "
          f"process's work only slows a round): without {best['bare']:.1f}, with {best['observed']:.1f}: "
          f"ratio {best['observed'] / best['bare']:.3f}")
    cpu = {side: statistics.median(rates) for side, rates in per_cpu.items()}
    print(f"calls per CPU second (median): without {cpu['bare']:.1f}, with {cpu['observed']:.1f}: "
          f"{1e6 * (1 / cpu['observed'] - 1 / cpu['bare']):.0f} us of CPU per call added; a scrape: "
          f"{scrape * 1000:.2f} ms")
    return 0


def _report_alternate(apps: dict[str, Starlette], pairs: int, block: int) -> None:
    before = load_average()
    gc.collect()
    total, ratios = asyncio.run(_alternate(apps, pairs, block))
    low, mid, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    print(f"load: {before} at the start, {load_average()} at the end; {pairs} pairs of calls, one at a time, "
          f"the sides in turn; blocks of {block}")
    print(f"CPU per call: without {1e6 * total['bare'] / pairs:.0f} us, with {1e6 * total['observed'] / pairs:.0f} us "
          f"(+{1e6 * (total['observed'] - total['bare']) / pairs:.1f} us)")
    print(f"ratio of calls per CPU second, with/without: all pairs {total['bare'] / total['observed']:.3f}; the "
          f"{len(ratios)} blocks' median {mid:.3f}, quartiles {low:.3f}-{high:.3f}, range {min(ratios):.3f}-"
          f"{max(ratios):.3f} (target >= 0.98)")


def _best_tenth(rates: list[float]) -> float:
    """The mean of the highest tenth of ``rates`` (at least one)."""
    ranked = sorted(rates, reverse=True)
    return statistics.fmean(ranked[:max(1, len(ranked) // 10)])


def _spread(rates: dict[str, list[float]]) -> str:
    """The rounds' with/without ratios: median, quartiles and range."""
    ratios = sorted(o / b for o, b in zip(rates["observed"], rates["bare"], strict=True))
    low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return (f"median {statistics.median(ratios):.3f}, quartiles {low:.3f}-{high:.3f}, "
            f"range {ratios[0]:.3f}-{ratios[-1]:.3f}")


def _timed(work: object) -> float:
    start = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())

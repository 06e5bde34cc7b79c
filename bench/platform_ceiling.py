"""How many streamed tokens per second the platform itself can pass on, in one run.

    .venv/bin/python bench/platform_ceiling.py [--tokens 64,1024] [--users 8,64] [--seconds 10]

A fast engine (the suite's OpenAI-compatible double, one token every 2 ms per stream) stands in for
a GPU serving engine such as vLLM. Streams of ``--tokens`` tokens, ``--users`` at a time, are read
for ``--seconds`` straight from the engine ("bare") and through ``qfnb serve`` with the engine
mapped to the chat model ("platform"); the ratio says how much of a fast engine the platform
keeps. On a small machine the engine double and this load generator share the cores with the
platform, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import printed_port, spawn_reporting  # noqa: E402
from serving import PROMPT, Side, start_bare, start_platform  # noqa: E402

log = logging.getLogger("bench.platform_ceiling")
ENGINE = """
import sys, uvicorn
sys.path.insert(0, {tests!r})
from fake_openai_engine import FakeEngine
from qfnb.local.server.listen import bind, bound_port
sock = bind("127.0.0.1")
print("engine port", bound_port(sock), flush=True)
config = uvicorn.Config(FakeEngine(tokens=1_000_000, delay={delay}).app, log_level="warning", timeout_keep_alive=30)
uvicorn.Server(config).run(sockets=[sock])
"""


async def pump(side: Side, users: int, tokens: int, seconds: float) -> float:
    """Streamed tokens per second with ``users`` streams kept going for ``seconds``."""
    count = 0
    end = time.perf_counter() + seconds

    async def user(client: httpx.AsyncClient, n: int) -> None:
        nonlocal count
        while time.perf_counter() < end:
            _, _, got = await side.one(client, PROMPT.format(n=n), tokens)
            count += got + 1

    limits = httpx.Limits(max_connections=users + 8, max_keepalive_connections=users + 8)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(user(client, n) for n in range(users)))
        return count / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="64,1024")
    ap.add_argument("--users", default="8,64")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--delay", type=float, default=0.002, help="engine seconds per token per stream")
    ap.add_argument("--observe-cost", action="store_true",
                    help="'bare' is the platform with /metrics and tracing off (QFNB_OBSERVE=0), not the engine")
    ap.add_argument("--rounds", type=int, default=1, help="measurements of each side, alternating which goes first")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="qfnb-bench-ceiling-"))
    engine, port = spawn_reporting([sys.executable, "-c", ENGINE.format(tests=str(ROOT / "tests" / "local"),
                                                                        delay=args.delay)],
                                   work / "engine.log", printed_port("engine"), timeout=60,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    users = [int(u) for u in args.users.split(",")]
    platform_proc = bare_proc = None
    try:
        platform_proc, platform = start_platform(work / "data", max(users), url)
        if args.observe_cost:
            bare_proc, bare = start_platform(work / "data-unobserved", max(users), url, observe=False, name="bare")
            log.info("observe cost: 'bare' below is the platform with /metrics and tracing off")
        else:
            bare_proc, bare = start_bare(max(users), work, url)
        for tokens in (int(t) for t in args.tokens.split(",")):
            for n in users:
                rates = dict.fromkeys((bare.name, platform.name), 0.0)
                for r in range(args.rounds):  # the best of each side's rounds
                    for side in (bare, platform) if r % 2 == 0 else (platform, bare):
                        rates[side.name] = max(rates[side.name], asyncio.run(pump(side, n, tokens, args.seconds)))
                log.info("%4d streams of %5d tokens: bare %7.0f tok/s, platform %7.0f tok/s = %5.1f %% of bare",
                         n, tokens, rates["bare"], rates["platform"], 100 * rates["platform"] / rates["bare"])
    finally:
        for proc in (platform_proc, bare_proc, engine):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

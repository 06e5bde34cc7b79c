"""What following a keyed call's phase costs the platform (``GET /qfnb/calls/{key}``, issue 58): the
marks one keyed model call makes (its :class:`~qfnb.local.engines.call_state.progress.CallProgress`, the
contextvar, two ``loading`` blocks, its slot, its token reader, its end) and those of a call without
a key (the contextvar reads, the shared no-op blocks), against the baseline measured in the same run:
the CPU time of one keyed chat call served whole by the in-process app on the tests' engine double
(it answers at once, so the platform's own work is all there is: the worst case).

    .venv/bin/python bench/call_progress.py [--calls 300] [--marks 100000]

Prints each side's microseconds and its share of the served call's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import sys
import tempfile
import time
import timeit
from functools import partial
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests" / "local")) if p not in sys.path]

from platform_doubles import FakeRegistry  # noqa: E402
from platform_helpers import Signer, make_settings  # noqa: E402

from bench._common import load_average  # noqa: E402
from qfnb.local.engines.call_state import progress  # noqa: E402
from qfnb.local.engines.call_state.progress import CallProgress  # noqa: E402
from qfnb.local.server.app import create_app  # noqa: E402
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER  # noqa: E402

ASK = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hello there, how are you today"}]}


async def _served_cpu(calls: int) -> float:
    """CPU seconds of this process per keyed chat call served whole (one at a time)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_settings(Path(tmp)), FakeRegistry())
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            token = (await client.get("/v1/BCE-BEARER/token", auth=Signer())).json()["token"]

            async def one(n: int) -> None:
                reply = await client.post("/v2/chat/completions", json=ASK, headers={
                    "Authorization": f"Bearer {token}", IDEMPOTENCY_HEADER: f"bench-{n}"})
                assert reply.status_code == 200, reply.text

            for n in range(20):  # warm up
                await one(-n - 1)
            cpu = time.process_time()
            for n in range(calls):
                await one(n)
            return (time.process_time() - cpu) / calls


def _keyed() -> None:
    call = CallProgress()
    progress.bind(call)
    with progress.loading():
        pass
    with progress.loading():
        pass
    call.on_slot()
    tokens = [0]
    call.follow(lambda: tokens[0])
    call.end(failed=False)


def _unkeyed() -> None:
    progress.current()
    with progress.loading():
        pass
    with progress.loading():
        pass
    progress.current()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--marks", type=int, default=100_000)
    args = ap.parse_args()
    served = asyncio.run(_served_cpu(args.calls))
    print(f"load: {load_average()}")
    print(f"baseline: a keyed chat call served whole, {served * 1e6:.0f} us of CPU ({args.calls} calls)")
    for name, marks in (("keyed call's marks", _keyed), ("unkeyed call's marks", _unkeyed)):
        cost = timeit.timeit(partial(contextvars.copy_context().run, marks), number=args.marks) / args.marks
        print(f"{name}: {cost * 1e6:.2f} us = {cost / served:.2%} of the baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

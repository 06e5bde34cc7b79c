"""What a retry costs when the platform reuses the first attempt's work, against one that starts again.

Usage: ``python bench/retry_reuse.py [--answer 1.0] [--cut 0.5] [--calls 3]``. The local platform's
app is served on 127.0.0.1 with a slow engine double (``--answer`` s before its first word, no
heartbeats). Each call's first attempt is cut after ``--cut`` s (its connection dropped: a
timeout that short on that attempt only), and qfnb's client retries. With ``QFNB_RETRY_GRACE_S``
at its default the retry attaches to the call still generating; at 0 (the baseline, measured in
the same run) the platform ignores the key and generates again. Printed: the seconds per call
and the engine calls of each, and their ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import load_average, log_to_stdout
from platform_doubles import FakeChat, FakeDelta, FakeRegistry

from qfnb._core.http.client import default_transport
from qfnb._core.transport import Request, Transport
from qfnb.local.engines.ask import Sampling
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER
from qfnb.resources.inference.chat import ChatCompletion
from tests.fakes.local_platform import served_platform

log = logging.getLogger("bench.retry_reuse")


def _registry(answer_s: float) -> FakeRegistry:
    class Slow(FakeChat):
        def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
            time.sleep(answer_s)
            yield from super()._words(text, sampling)

    class Registry(FakeRegistry):
        def make_chat(self, tag: str) -> FakeChat:
            return Slow(tag)

    return Registry()


class FirstAttemptCut(Transport):
    """The real transport; each call's first attempt waits at most ``cut`` s (its connection drops)."""

    def __init__(self, real: Transport, cut: float) -> None:
        self.real, self.cut, self.seen = real, cut, set[str]()

    def _shaped(self, request: Request) -> Request:
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not key or key in self.seen:
            return request
        self.seen.add(key)
        return Request(request.method, request.url, request.headers, request.content, self.cut)

    async def send(self, request: Request) -> Any:
        return await self.real.send(self._shaped(request))

    async def stream(self, request: Request) -> Any:
        return await self.real.stream(self._shaped(request))


def run(answer_s: float, cut_s: float, calls: int, grace: float) -> tuple[float, int]:
    """Seconds per call, and engine calls, with the platform's retry grace at ``grace``."""
    with tempfile.TemporaryDirectory() as tmp, served_platform(Path(tmp) / "platform", registry=_registry(answer_s),
                                                                heartbeat=0, retry_grace=grace) as served:
        base = served.config(llm_api_retry_count=3, llm_api_retry_backoff_factor=0.1, llm_api_retry_jitter=0.0,
                             llm_api_retry_timeout=60)
        config = dataclasses.replace(base, transport=FirstAttemptCut(default_transport(base), cut_s))
        chat = ChatCompletion(model="Tiny-Chat", config=config)
        start = time.perf_counter()
        for i in range(calls):
            answer = chat.do(messages=[{"role": "user", "content": f"call {i}"}])
            assert answer.body["result"] == f"tiny-chat: call {i}"
        return (time.perf_counter() - start) / calls, len(served.registry.engines["tiny-chat"].calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answer", type=float, default=1.0, help="the engine's seconds before its answer")
    parser.add_argument("--cut", type=float, default=0.5, help="the first attempt's connection drops after this")
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    log_to_stdout()
    log.info("load average at start: %s", load_average())
    again_s, again_calls = run(args.answer, args.cut, args.calls, 0.0)
    reuse_s, reuse_calls = run(args.answer, args.cut, args.calls, 30.0)
    log.info("baseline (the retry generates again): %.2f s per call, %d engine calls for %d calls",
             again_s, again_calls, args.calls)
    log.info("reused (the retry attaches):          %.2f s per call, %d engine calls for %d calls",
             reuse_s, reuse_calls, args.calls)
    log.info("ratio reused/baseline: time %.2f, engine calls %.2f", reuse_s / again_s, reuse_calls / again_calls)
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    main()

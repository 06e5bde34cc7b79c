"""What the platform's own layers cost a streamed token, warm and with the CPU caches evicted.

On the 2-core machine a llama-server engine streams its weights through the caches for every token,
so the daemon that wakes to pass a token on finds its code and data evicted: its CPU a token is about
ten times what the same code costs in a warm loop (round 16: 10 us warm, 115 us evicted, for the
engine's chunk read into a Delta and written as a v1 event). This bench measures that path (the engine's
SSE bytes -> ``transport.deltas`` -> ``V1Render.events`` -> the event's bytes) one token at a time,
median of ``--tokens``, each preceded by a walk over ``--evict-mb`` of memory, and the same path
with JSON read and written by the standard library (``fastjson`` without orjson: what the code did
before round 16 for the JSON) as the baseline, in the same run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qfnb.local.convert.answer import Tally
from qfnb.local.convert.qianfan_v1 import V1Render
from qfnb.local.engines.base import Delta
from qfnb.local.engines.llama.link import transport
from qfnb.protocol.wires.codec import fastjson

log = logging.getLogger("bench.stream_layers")
_SERVED: Any = SimpleNamespace(name="qwen2.5-coder-0.5b-instruct")  # the model that served (unread by v1's render)

#: one token's chunk as llama-server streams it from /v1/completions
CHUNK = (b'data: {"choices":[{"text":" the","index":0,"logprobs":null,"finish_reason":null}],'
         b'"created":1764260000,"model":"qwen2.5-coder-0.5b-instruct","system_fingerprint":"b6000-1a2b3c4d",'
         b'"object":"text_completion","id":"chatcmpl-0123456789abcdef"}\n\n')


class _Chunks:
    """An engine answer's body whose chunks the bench hands in one at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.queue.get()


async def per_token(tokens: int, evict: np.ndarray[Any, Any] | None) -> float:
    """Median seconds from an engine chunk's arrival to its event's bytes."""
    chunks = _Chunks()

    async def indexed() -> AsyncIterator[tuple[int, Delta]]:
        async for delta in transport.deltas(aiter(chunks), chat=False):
            yield 0, delta

    events = V1Render("completion", True, "as-bench", 0).events(indexed(), [Tally()], _SERVED)
    times = []
    for _ in range(tokens):
        if evict is not None:
            evict.sum()
        start = time.perf_counter()
        chunks.queue.put_nowait(CHUNK)
        await anext(events)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=400)
    ap.add_argument("--evict-mb", type=int, default=64, help="memory walked before each token (> the L3 cache)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    evict = np.ones(args.evict_mb * 2**20 // 8)
    orjson = vars(fastjson)["orjson"]  # the module it imported, or None
    if orjson is None:
        log.error("orjson is not installed (the server extra brings it)")
        return 2
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for json_by in ("stdlib", "orjson"):
            setattr(fastjson, "orjson", orjson if json_by == "orjson" else None)  # noqa: B010 (a module's global)
            for caches in ("warm", "evicted"):
                seconds = asyncio.run(per_token(args.tokens, evict if caches == "evicted" else None))
                results.setdefault((json_by, caches), []).append(seconds)
    setattr(fastjson, "orjson", orjson)  # noqa: B010
    med = {key: statistics.median(v) * 1e6 for key, v in results.items()}
    for caches in ("warm", "evicted"):
        log.info("%-7s caches: %.1f us a token with orjson, %.1f us with the standard library's json -> %.2fx",
                 caches, med["orjson", caches], med["stdlib", caches], med["stdlib", caches] / med["orjson", caches])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The runner streams its input: its memory does not grow with the row count (one byte per input
line for the answered map aside)."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from batch_helpers import job_paths, run_traced

from qfnb.local.engines.ask import ChatAsk
from qfnb.local.engines.base import Delta
from qfnb.local.engines.gate import Gate


class Instant:
    name = "instant"

    def __init__(self) -> None:
        self.gate = Gate("instant", 8, 0)

    can_call_tools = False

    async def generate(self, ask: ChatAsk) -> Any:
        with self.gate.admit():
            yield Delta("an answer of a few words", "normal", 3, 5)


def _peak(work: Path, rows: int) -> int:
    paths = job_paths(work)
    with open(paths.input, "w") as fh:
        for i in range(rows):
            fh.write(json.dumps({"custom_id": f"r{i}", "body": {"messages": [{"role": "user", "content": f"q {i}"}]}})
                     + "\n")
    runner, peak = run_traced(paths, rows, Instant(), model=None)
    assert runner.progress.done == rows
    assert paths.output.read_text().count("\n") == rows
    return peak


def test_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    # in a fresh interpreter: tracemalloc counts every thread's allocations, and threads an earlier test
    # of this worker left running allocated 269 KB more during the longer run (seen once under xdist)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        small, large = fresh.submit(_peak, tmp_path / "small", 300).result(), \
            fresh.submit(_peak, tmp_path / "large", 1800).result()
    print(f"peak traced memory: {small} bytes for 300 rows, {large} for 1800")
    assert large - small < 256 * 1024, (small, large)

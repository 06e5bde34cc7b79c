"""A list call on a full store (issue 70 §4): ``GET /v1/chat/completions?limit=1`` with 30,000 stored
chat completions of about 2 KB each, before (every record read and parsed, then the page cut: the
code before the fix, measured here as it was) and after (one page read by SQL), in the same run:
time and the peak of Python's allocations (tracemalloc).

    .venv/bin/python bench/store_lists.py [--records 30000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import load_average, log_to_stdout  # noqa: E402

from qfnb.local.domain.records import chat_completions  # noqa: E402
from qfnb.local.domain.state.store import Store  # noqa: E402
from qfnb.protocol.wires.responses.answer import list_page  # noqa: E402

log = logging.getLogger("bench.store_lists")


def _every_record(store: Store) -> dict[str, Any]:
    """The list call as it was: every record read and parsed under the lock, then a page cut."""
    return list_page([r["completion"] for r in store.all("chat_completions")], order="asc", limit=1)


def _measured(call: Callable[[], Any]) -> tuple[float, float]:
    tracemalloc.start()
    begun = time.perf_counter()
    try:
        call()
        return time.perf_counter() - begun, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=30_000)
    args = parser.parse_args()
    log_to_stdout()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "platform.sqlite3")
        rows = [(f"chatcmpl-{i:06d}", time.time(), json.dumps({"completion": {
            "id": f"chatcmpl-{i:06d}", "model": "tiny-chat", "metadata": {"n": str(i)},
            "choices": [{"message": {"content": "x" * 2000}}]}, "messages": []})) for i in range(args.records)]
        with store._lock:
            store._db.executemany("INSERT INTO chat_completions (sid, created, data) VALUES (?, ?, ?)", rows)
        del rows
        log.info("load before: %s", load_average())
        before = _measured(lambda: _every_record(store))
        after = _measured(lambda: chat_completions.listed(store, metadata={}, limit=1))
        filtered = _measured(lambda: chat_completions.listed(store, metadata={"n": "29999"}, limit=1))
        log.info("%d records, limit=1: before %.3f s, %.1f MiB; after %.4f s, %.2f MiB (%.0f× faster, %.0f× less)",
                 args.records, *before, *after, before[0] / after[0], before[1] / max(after[1], 1e-3))
        log.info("after, filtered by metadata (the last record matches: a full SQL scan): %.3f s, %.2f MiB",
                 *filtered)
        log.info("load after: %s", load_average())
        store.close()


if __name__ == "__main__":
    main()

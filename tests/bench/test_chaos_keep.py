"""What the chaos bench keeps of a run (``--keep``) and prints: the books a failed run is read from
(the train phase kept nothing before), and no per-request line of the openai SDK's HTTP library."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(BENCH))  # the bench's modules import each other by bare name
    import chaos_books

    yield chaos_books
    for name in ("chaos_books", "_common"):
        sys.modules.pop(name, None)


def test_keep_copies_the_engine_daemon_kernel_batch_and_fine_tune_books(bench: Any, tmp_path: Path) -> None:
    work, dest = tmp_path / "work", tmp_path / "kept"
    files = {"engine.jsonl": "e", "kernel.log": "k", "data/daemon.log": "d", "data/batches/infer-1/lost.log": "b",
             "data/jobs/task-2/worker.log": "w", "data/jobs/task-2/progress.jsonl": "p",
             "data/jobs/task-2/model.safetensors": "not a book"}
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    bench.keep_logs(work, dest)
    kept = {p.name: p.read_text() for p in dest.iterdir()}
    assert kept == {"engine.jsonl": "e", "kernel.log": "k", "daemon.log": "d", "infer-1-lost.log": "b",
                    "task-2-worker.log": "w", "task-2-progress.jsonl": "p"}


def test_the_bench_log_leaves_out_the_openai_sdks_per_request_lines(bench: Any,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    import _common

    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    try:
        _common.log_to_stdout()
        with caplog.at_level(logging.NOTSET):
            logging.getLogger("httpx2").info('HTTP Request: GET http://127.0.0.1:1/v1/batches/b "HTTP/1.1 200 OK"')
            logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:1/v1/models "HTTP/1.1 200 OK"')
            logging.getLogger("bench.chaos").info("rows lost 0")
        assert [r.getMessage() for r in caplog.records] == ["rows lost 0"]
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

"""Batch jobs with bounds (issue 34 §3): hostile rows are refused naming the field, a line over the
body cap is not read whole, and jobs over ``max_batch_jobs`` wait with no thread while the
running ones sleep until something happens."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_doubles import paced_platform
from batch_helpers import job_paths, run_traced

from qfnb.local.domain.batch import rows as batch_rows
from qfnb.local.domain.batch import tasks as batch
from qfnb.local.domain.batch.runner import Runner
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.base import Delta
from qfnb.local.engines.gate import Gate
from qfnb.protocol.limits import MAX_BODY_BYTES
from tests.fakes.local_platform import ServedPlatform

MIB = 1024 * 1024


class Recording:
    """An instant engine noting every request it receives."""

    name = "recording"

    def __init__(self) -> None:
        self.gate = Gate("recording", 4, 0)
        self.seen: list[tuple[int, Sampling]] = []

    can_call_tools = False

    async def generate(self, ask: ChatAsk) -> Any:
        with self.gate.admit():
            self.seen.append((len(ask.messages), ask.sampling))
            yield Delta("ok", "normal", 1, 1)


def _run(work: Path, write: Any) -> tuple[Runner, Recording, int]:
    """Run a job over the input ``write(fh)`` produces; ``(runner, engine, peak traced bytes)``."""
    paths = job_paths(work)
    with open(paths.input, "wb") as fh:
        write(fh)
    rows, _ = batch_rows.count_lines(paths.input)
    engine = Recording()
    runner, peak = run_traced(paths, rows + 2, engine, model="tiny-chat")
    return runner, engine, peak


def _errors(work: Path) -> dict[int, str]:
    return {r["line"]: r["error"]["message"] for r in map(json.loads, (work / "err.jsonl").read_text().splitlines())}


def _line(body: dict[str, Any], cid: str) -> bytes:
    row = {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(row).encode() + b"\n"


def test_hostile_rows_become_error_rows_naming_the_field(tmp_path: Path) -> None:
    hello = [{"role": "user", "content": "hello"}]
    many = [{"role": "user" if i % 2 == 0 else "assistant", "content": "x"} for i in range(20_001)]

    def write(fh: Any) -> None:
        fh.write(_line({"messages": hello, "temperature": 50}, "hot"))
        fh.write(_line({"messages": hello, "top_p": -3}, "negative"))
        fh.write(_line({"messages": hello, "max_tokens": 1e9}, "huge"))
        fh.write(_line({"messages": many}, "long"))
        fh.write(json.dumps({"id": "q", "query": "hello", "temperature": 50}).encode() + b"\n")  # Qianfan style
        fh.write(_line({"messages": hello, "temperature": 0.5, "max_tokens": 20}, "fine"))

    runner, engine, _ = _run(tmp_path / "job", write)
    errors = _errors(tmp_path / "job")
    assert sorted(errors) == [1, 2, 3, 4, 5]
    for line, field in ((1, "temperature"), (2, "top_p"), (3, "max_tokens"), (4, "messages"), (5, "temperature")):
        assert errors[line].startswith(f"line {line}: {field}"), errors[line]
        assert "Error" not in errors[line] and "Traceback" not in errors[line]
    assert engine.seen == [(1, Sampling(temperature=0.5, max_tokens=20))]  # only the good row reached it
    assert (runner.progress.done, runner.progress.failed) == (1, 5)


def test_a_line_over_the_body_cap_is_an_error_row_and_is_not_read_whole(tmp_path: Path) -> None:
    size = 150_000_000

    def write(fh: Any) -> None:
        fh.write(json.dumps({"id": "before", "query": "hello"}).encode() + b"\n")
        fh.write(b'{"id": "big", "query": "')
        chunk = b"a" * MIB
        for _ in range(size // MIB):
            fh.write(chunk)
        fh.write(b'"}\n')
        fh.write(json.dumps({"id": "after", "query": "hello"}).encode() + b"\n")

    runner, engine, peak = _run(tmp_path / "job", write)
    errors = _errors(tmp_path / "job")
    assert list(errors) == [2] and f"at most {MAX_BODY_BYTES} bytes" in errors[2], errors
    assert len(engine.seen) == 2 and runner.progress.done == 2
    print(f"peak traced memory with a {size}-byte line: {peak / MIB:.1f} MiB")
    assert peak < 3 * MAX_BODY_BYTES, peak  # a chunk of the line at a time, never the line


@pytest.fixture()
def capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0.001", max_batch_jobs=2,
                        max_waiting_batch_jobs=1000) as served:
        yield served


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("qfnb-batch-")]


def test_a_thousand_waiting_jobs_hold_no_thread_and_the_running_ones_sleep(capped: ServedPlatform) -> None:
    platform = capped.app.state.platform
    platform.objects.path("in", "one.jsonl").parent.mkdir(parents=True, exist_ok=True)
    platform.objects.path("in", "one.jsonl").write_text(json.dumps({"id": "a", "query": "hello"}) + "\n")
    gate = platform.registry.chat("tiny-chat").gate
    body = {"name": "t", "inputBosUri": "bos:/in/one.jsonl", "outputBosUri": "bos:/out/", "endpoint": "tiny-chat"}
    holds = [gate.admit() for _ in range(gate.slots)]
    for hold in holds:  # interactive requests fill every slot: no job can send a row
        hold.__enter__()
    try:
        ids = [batch.create(platform, body)["id"] for _ in range(1002)]  # 2 run, 1,000 wait
        with pytest.raises(batch.TooManyJobs, match="max_waiting_batch_jobs=1000"):
            batch.create(platform, body)
        deadline = time.monotonic() + 30
        while len(batch.runners(platform)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        runners = batch.runners(platform)
        assert len(runners) == 2 and len(_batch_threads()) == 2
        statuses = [platform.store.get("batches", i)["runStatus"] for i in ids]
        assert statuses.count("Queuing") == 1000
        before = {i: r.wakeups for i, r in runners.items()}
        time.sleep(0.5)  # a 10 ms poll would wake each runner about 50 times here
        assert {i: r.wakeups for i, r in runners.items()} == before
    finally:
        for hold in holds:
            hold.__exit__(None, None, None)
    # the slots free: the running jobs wake, finish, and the next ones take their places
    for i in ids[:6]:
        batch.wait(platform, i, 30)
        assert platform.store.get("batches", i)["runStatus"] == "Done"
    for i in ids:
        batch.stop(platform, i)
    for i in ids:
        batch.wait(platform, i, 30)
    assert {platform.store.get("batches", i)["runStatus"] for i in ids} <= {"Done", "Stopped"}
    assert _batch_threads() == [] and batch.runners(platform) == {}

"""The Ray batch job's driver (``qfnb.local.cluster.ray_batch``) against a fake ``ray`` module: each
finished row is printed with its prompt; when the job is stopped (SIGTERM, what ``stop_job`` sends)
the driver prints what the rows in flight had spent (``QFNB-SPENT``), exits as stopped, and gives the
process its SIGTERM handler back. The real cluster: ``tests/batch/test_ray_real.py``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qfnb.local.cluster import ray_batch
from qfnb.local.engines.base import Delta
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.resources.batch.ray_jobs import log_lines, log_rows, usage_of


@dataclass(eq=False)
class Ref:
    value: Any
    ready: bool


class Handle:
    """A worker: the first ``answers`` rows it is sent finish, later ones stay in flight."""

    def __init__(self, answers: int) -> None:
        self.answers, self.sent = answers, 0
        self.answer = SimpleNamespace(remote=self._answer)
        self.spent = SimpleNamespace(remote=lambda: Ref({"3": (7, 2)}, True))  # row 3 had streamed 2 tokens
        self.close = SimpleNamespace(remote=lambda: Ref(None, True))
        self.node_id = SimpleNamespace(remote=lambda: Ref("node-a", True))

    def _answer(self, raw: str, line: int) -> Ref:
        self.sent += 1
        row = json.loads(raw)
        body = {"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        return Ref({"custom_id": row["custom_id"], "response": {"status_code": 200, "body": body}, "error": None},
                   self.sent <= self.answers)


class FakeRay:
    exceptions = SimpleNamespace(RayError=RuntimeError)

    def __init__(self, answers: int) -> None:
        self.handle = Handle(answers)
        self.stopped = False

    def init(self, **_: Any) -> None:
        pass

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 1.0}

    def remote(self, **_: Any) -> Any:
        return lambda cls: SimpleNamespace(remote=lambda *args: self.handle)

    def wait(self, refs: list[Ref], num_returns: int, timeout: float) -> tuple[list[Ref], list[Ref]]:
        ready = [r for r in refs if r.ready][:num_returns]
        if not ready and not self.stopped:
            self.stopped = True
            signal.raise_signal(signal.SIGTERM)  # stop_job, while rows are in flight
        return ready, [r for r in refs if r not in ready]

    def get(self, ref: Ref | list[Ref]) -> Any:
        return [r.value for r in ref] if isinstance(ref, list) else ref.value


def _rows(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions",
                                        "body": {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}})
                            + "\n" for i in range(n)))
    return path


def test_a_stopped_driver_prints_its_rows_and_what_the_rows_in_flight_spent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeRay(answers=3)
    monkeypatch.setattr(ray_batch, "importlib", SimpleNamespace(import_module=lambda name: fake))
    before = signal.getsignal(signal.SIGTERM)
    code = ray_batch.main(["--input", str(_rows(tmp_path, 6)), "--model", "m", "--workers", "1", "--slots", "2"])
    assert code == 143 and signal.getsignal(signal.SIGTERM) == before
    out = capsys.readouterr().out
    rows = log_rows(out)
    assert [(r["custom_id"], r["qfnb_prompt"]) for r in rows] == [("0", "q0"), ("1", "q1"), ("2", "q2")]
    assert {r["qfnb_node"] for r in rows} == {"node-a"}  # the node whose engine answered each row
    spent = log_lines(out, "QFNB-SPENT ")
    assert spent == [{"custom_id": "3", "usage": {"prompt_tokens": 7, "completion_tokens": 2}}]
    assert usage_of(rows, spent)[:2] == (3 * 5 + 7, 3 * 1 + 2)  # what the stopped attempt's ledger entry holds


def test_a_driver_that_is_not_stopped_answers_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeRay(answers=4)
    monkeypatch.setattr(ray_batch, "importlib", SimpleNamespace(import_module=lambda name: fake))
    assert ray_batch.main(["--input", str(_rows(tmp_path, 4)), "--model", "m", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert len(log_rows(out)) == 4 and "QFNB-SPENT" not in out and not fake.stopped


def test_a_worker_on_a_node_without_the_models_weights_answers_an_error_row_naming_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    worker = ray_batch.EngineWorker("Qwen2.5-0.5B-Instruct", slots=1)

    def missing(name: str) -> Any:
        raise ray_batch.AssetError(f"{name}: the package 'gt-qwen' is not installed")

    monkeypatch.setattr(worker.registry, "chat", missing)
    try:
        raw = json.dumps({"custom_id": "7", "method": "POST", "url": "/v1/chat/completions",
                          "body": {"messages": [{"role": "user", "content": "q"}]}})
        row = asyncio.run(worker.answer(raw, 8))
    finally:
        worker.close()
    assert row["custom_id"] == "7" and row["response"] is None
    error = row["error"]
    assert error["code"] == "model_not_available"
    assert "Ray node" in error["message"] and "Qwen2.5-0.5B-Instruct" in error["message"]
    assert "gt-qwen" in error["message"] and "runtime_env" in error["message"]


def test_the_error_names_no_node_outside_a_ray_worker_and_starts_no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a worker (Ray imported, not connected) the message says "this Ray node" and asks Ray
    nothing: Ray's runtime context, asked there, starts a local Ray instance."""
    asked: list[str] = []
    fake = SimpleNamespace(is_initialized=lambda: False,
                           get_runtime_context=lambda: asked.append("context"))  # would start Ray
    monkeypatch.setitem(sys.modules, "ray", fake)
    worker = ray_batch.EngineWorker("m", slots=1)
    try:
        assert worker.where() == "this Ray node" and asked == []
    finally:
        worker.close()


class _CrashingEngine:
    """An engine that has a row and goes away without answering (``crashes`` times: its request
    ``reached``, or refused before it was read), then answers it."""

    name = "m"

    def __init__(self, crashes: int, reached: bool) -> None:
        self.crashes, self.reached, self.sent = crashes, reached, 0

    async def generate(self, ask: Any) -> Any:
        self.sent += 1
        if self.sent <= self.crashes:
            raise EngineUnavailable("m: the engine stopped answering", reached=self.reached)
        yield Delta("ok", finish_reason="stop", prompt_tokens=5, completion_tokens=1)


@pytest.mark.parametrize("reached", [True, False])
def test_a_worker_retry_after_an_engine_crash_carries_the_lost_sendings(
        monkeypatch: pytest.MonkeyPatch, reached: bool) -> None:
    """A worker sends a row again when its engine went away; each sending the engine had is on the
    row's line (``qfnb_lost``, its cap each) so the attempt pays it; a sending the engine never read is not."""
    worker = ray_batch.EngineWorker("m", slots=1)
    engine = _CrashingEngine(2, reached)
    monkeypatch.setattr(worker.registry, "chat", lambda name: engine)
    monkeypatch.setattr(ray_batch, "backoff", lambda attempt, hint=0.0: 0.0)
    try:
        raw = json.dumps({"custom_id": "4", "method": "POST", "url": "/v1/chat/completions",
                          "body": {"max_tokens": 9, "messages": [{"role": "user", "content": "q"}]}})
        row = asyncio.run(worker.answer(raw, 5))
    finally:
        worker.close()
    assert engine.sent == 3 and row["error"] is None
    assert row.get("qfnb_lost", []) == ([9, 9] if reached else [])

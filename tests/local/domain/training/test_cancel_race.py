"""Issue 92 §2: a cancel that cancels. A run asked to stop at any point of its launch (queued, claimed, its
process starting, started, its worker finishing with a Done result) ends Stopped: no worker trains it to Done,
its status never changes again, and its OpenAI job (``cancelled``) serves no model, its checkpoints included.
A stress of 50 create-cancel races through OpenAI's routes, with the fast stand-in worker, finds none that
answered ``cancelled`` and later became anything else."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_helpers import bearer
from starlette.testclient import TestClient

from qfnb.local.domain.state.store import Store
from qfnb.local.domain.training import jobs
from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.wires.qianfan import batch

FAKE_WORKER = Path(__file__).parents[2] / "fake_worker.py"


@pytest.fixture()
def supervised(tmp_path: Path) -> Iterator[tuple[Store, jobs.Supervisor]]:
    store = Store(tmp_path / "store.db")
    sup = jobs.Supervisor(store, (sys.executable, str(FAKE_WORKER)), poll_interval=0.05)
    try:
        yield store, sup
    finally:
        sup.shutdown(5)
        store.close()


def _run(store: Store, tmp_path: Path, steps: int = 3, step_seconds: float = 0.02) -> dict[str, Any]:
    job_dir = tmp_path / f"job-{time.monotonic_ns()}"
    job_dir.mkdir()
    (job_dir / "train.jsonl").write_text(json.dumps({"prompt": "q", "response": "a"}) + "\n")
    (job_dir / "spec.json").write_text(json.dumps({
        "base_model": "tiny-chat", "train_file": str(job_dir / "train.jsonl"), "seed": 1, "train_mode": "SFT",
        "hyper": {"epoch": 1, "batchSize": 1, "maxSteps": steps, "stepSeconds": step_seconds}}))
    return store.insert("runs", {"status": RunStatus.WAITING.value, "job_dir": str(job_dir), "hyper": {},
                                 "baseModel": "tiny-chat", "openai": {"fine_tuned_model": "ft:x"}})


def _settled(store: Store, sup: jobs.Supervisor, run_id: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sup.tick()
        run = store.get("runs", run_id)
        assert run is not None
        if run["status"] not in jobs.ACTIVE:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def _stays_stopped(store: Store, sup: jobs.Supervisor, run_id: int) -> None:
    run = _settled(store, sup, run_id)
    assert run["status"] == RunStatus.STOPPED.value and fine_tuning.status(run) == "cancelled", run
    assert not run.get("adapter_dir"), run
    for _ in range(5):  # later passes change nothing
        sup.tick()
        time.sleep(0.05)
    again = store.get("runs", run_id)
    assert again is not None and again["status"] == RunStatus.STOPPED.value
    assert again.get("finished") == run.get("finished")


POINTS = ["queued", "claimed", "spawned", "started", "finishing"]


@pytest.mark.parametrize("point", POINTS)
def test_a_cancel_at_each_point_of_the_launch_ends_stopped(supervised: tuple[Store, jobs.Supervisor],
                                                           tmp_path: Path, point: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store, sup = supervised
    run = _run(store, tmp_path)
    answered: list[str] = []

    def cancel() -> None:
        assert sup.stop(run["id"])
        answered.append(fine_tuning.status(store.get("runs", run["id"]) or {}))

    real_popen = subprocess.Popen

    def popen(*args: Any, **kw: Any) -> Any:
        if point == "claimed":
            cancel()
        proc = real_popen(*args, **kw)
        if point == "spawned":
            cancel()
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen)  # jobs starts its workers through it
    if point == "queued":
        cancel()
    if point == "finishing":  # the worker ended Done; the stop comes before its end is written
        sup.on_finished = lambda run_now, metrics: cancel()
    sup.tick()
    if point == "started":
        cancel()
    _stays_stopped(store, sup, run["id"])
    assert answered == ["cancelled"]


def test_a_stop_after_the_end_is_refused_and_changes_nothing(supervised: tuple[Store, jobs.Supervisor],
                                                             tmp_path: Path) -> None:
    store, sup = supervised
    run = _run(store, tmp_path, steps=1, step_seconds=0.0)
    sup.tick()
    done = _settled(store, sup, run["id"])
    assert done["status"] == RunStatus.DONE.value
    assert sup.stop(run["id"]) is False
    after = store.get("runs", run["id"])
    assert after is not None and after["status"] == RunStatus.DONE.value and not after.get("stopRequested")


def _watch(client: TestClient, headers: dict[str, str], job_id: str, seen: list[str],
           until: Callable[[], bool]) -> None:
    while not until():
        seen.append(client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=headers).json()["status"])
        time.sleep(0.02)


def test_fifty_create_cancel_races_never_leave_cancelled(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {bearer(client)}"}
    chat = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(4))
    file_id = client.post(batch.FILES, data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", chat.encode())},
                          headers=headers).json()["id"]
    store = client.app.state.platform.store  # type: ignore[attr-defined]
    ids = []
    for n in range(50):
        job = client.post("/v1/fine_tuning/jobs", headers=headers, json={
            "model": "tiny-chat", "training_file": file_id, "seed": n,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 1}}}})
        assert job.status_code == 200, job.text
        time.sleep(0.003 * (n % 20))  # the cancel lands at a different point of the launch each time
        cancelled = client.post(f"/v1/fine_tuning/jobs/{job.json()['id']}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        ids.append(job.json()["id"])
    deadline = time.monotonic() + 120
    while any(r["status"] in jobs.ACTIVE for r in store.all("runs")):
        assert time.monotonic() < deadline, [r["status"] for r in store.all("runs")]
        time.sleep(0.1)
    seen: list[str] = []
    stop_at = time.monotonic() + 1.0
    threads = [threading.Thread(target=_watch, args=(client, headers, i, seen, lambda: time.monotonic() > stop_at))
               for i in ids[:5]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    views = [client.get(f"/v1/fine_tuning/jobs/{i}", headers=headers).json() for i in ids]
    assert {v["status"] for v in views} == {"cancelled"}, [v["status"] for v in views]
    assert all(v["fine_tuned_model"] is None and v["finished_at"] is not None for v in views)
    assert set(seen) <= {"cancelled"}
    served = client.post("/v1/chat/completions", headers=headers, json={
        "model": store.all("runs")[0]["openai"]["fine_tuned_model"], "messages": [{"role": "user", "content": "hi"}]})
    assert served.status_code >= 400 and "cancelled" in served.text


@pytest.mark.parametrize("end", ["cancelled", "failed"])
def test_a_cancelled_or_failed_run_is_counted_with_its_trained_tokens(supervised: tuple[Store, jobs.Supervisor],
                                                                      tmp_path: Path, end: str) -> None:
    """Issue 92 §3: every run that trained is counted (the platform's /metrics and traces), not only a Done one."""
    store, sup = supervised
    counted: list[tuple[str, int]] = []
    sup.on_finished = lambda run, metrics: counted.append((str(run["status"]), int(metrics.get("trained_tokens", 0))))
    run = _run(store, tmp_path, steps=40, step_seconds=0.05)
    if end == "failed":
        spec_path = Path(run["job_dir"]) / "spec.json"
        spec = json.loads(spec_path.read_text())
        spec["hyper"]["failAt"] = 3
        spec_path.write_text(json.dumps(spec))
    sup.tick()
    if end == "cancelled":
        time.sleep(0.3)
        assert sup.stop(run["id"])
    final = _settled(store, sup, run["id"])
    assert final["status"] == (RunStatus.STOPPED.value if end == "cancelled" else RunStatus.FAILED.value)
    assert len(counted) == 1 and counted[0][1] > 0, counted

"""The probe's Ray findings, against a hostile Jobs API double (``ray_doubles.FakeJobs`` that records
what a job ships and lets the test print what it likes into a job's log):

* a remote job ships the qfnb it runs (its package folder by ``py_modules``, requirements pinned) and
  never names ``qfnb`` to pip (an unregistered name on the index: whoever took it ran code on every
  worker);
* journal lines a hostile head or another job forged (negative, huge or non-numeric usage, no mark,
  another job's mark, a row never sent, a row printed twice) are refused and reported: results, the
  ledger and the budget hold the honest rows only (before: ``budget(tokens=5000)`` read
  -2,999,999,985/5,000 and a 1,000,000-token hold passed);
* a silent head, a huge log and a job that never ends are given up on, by name.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_doubles import FakeJob, FakeJobs, answer

from qfnb import ChatCompletion
from qfnb._core.errors import ValidationError
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import budget
from qfnb.local.cluster import jobs as jobs_api
from qfnb.local.cluster.ray_batch import row_line, spent_line
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.resources.batch import ray_jobs as batch_ray

REMOTE = "ray://10.20.30.40:8265"  # not this machine: the job must bring qfnb along
MODEL = "Gemma-3-270M"


@pytest.fixture
def head(monkeypatch: pytest.MonkeyPatch, own_record_dir: None) -> Iterator[FakeJobs]:
    fake = FakeJobs(rows_per_read=10)
    monkeypatch.setattr(batch_ray, "connect", lambda target: fake)
    yield fake


def _prompts(n: int) -> list[list[dict[str, Any]]]:
    return [[{"role": "user", "content": f"row {i}"}] for i in range(n)]


def _forged(custom_id: str, prompt: int, completion: Any, mark: str | None, lost: Any = None) -> str:
    row = answer({"custom_id": custom_id, "body": {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}})
    row["response"]["body"]["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if lost is not None:
        row["qfnb_lost"] = lost  # sendings its worker says an engine had and lost: each paid at its cap
    row["response"]["body"]["choices"][0]["message"]["content"] = "FORGED"
    return row_line(row, "x", "node-evil", mark)


def test_a_remote_job_ships_its_own_qfnb_and_never_installs_one_by_name(head: FakeJobs) -> None:
    job = ChatCompletion(model=MODEL).batch_do(_prompts(2), target=REMOTE, max_output_tokens=4)
    env = head.jobs[job.task_id].runtime_env
    shipped = Path(env["py_modules"][0])
    assert shipped.name == "qfnb" and (shipped / "local" / "cluster" / "ray_batch.py").is_file()
    packages = env["pip"]["packages"]
    assert packages and not [p for p in packages if p.lower().startswith("qfnb")]
    assert all("==" in p for p in packages if p.split("==")[0] in ("httpx", "jsonschema", "torch"))
    assert "qfnb[local]" not in json.dumps(env) and "PYTHONPATH" not in env["env_vars"]
    journal = default_data_dir() / "ray-journal" / f"{job.task_id}.json"
    assert json.loads(journal.read_text())["mark"] == env["env_vars"]["QFNB_JOURNAL_MARK"]
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


def test_forged_journal_lines_are_refused_and_reported_and_never_spent(head: FakeJobs) -> None:
    spend = budget(tokens=100_000)
    chat = ChatCompletion(model=MODEL)
    job = chat.batch_do(_prompts(4), target=REMOTE, max_output_tokens=4)
    mine = head.jobs[job.task_id]
    # a hostile head prints into this job's own log, before its honest rows...
    mine.forged += [
        _forged("0", 3, -3_000_000_000, mine.mark),  # negative usage: once turned the budget negative
        _forged("1", 10**9, 1, mine.mark),  # past the row's worst case
        _forged("2", 3, "2", mine.mark), _forged("2", 3, True, mine.mark),  # not whole numbers
        _forged("3", 3, 2, None), _forged("3", 3, 2, "f" * 32),  # no mark, a wrong one
        _forged("99", 3, 2, mine.mark),  # a row this job never sent
        spent_line("1", 10**9, 0, mine.mark),  # in-flight spending past the worst case
        # lost sendings past the worst case, more than a worker's tries, not whole numbers
        _forged("0", 3, 2, mine.mark, [10**9]), _forged("1", 3, 2, mine.mark, [4] * 8),
        _forged("2", 3, 2, mine.mark, ["4"]),
    ]
    # ... and another job on the shared cluster publishes rows under this job's name, with its mark copied
    evil = FakeJob("qfnb-evil-1", dict(mine.metadata), mine.entrypoint, {}, [], status="SUCCEEDED",
                   start_time=mine.start_time - 1000, end_time=mine.start_time)
    evil.forged = [_forged(str(i), 3, 2, mine.mark) for i in range(4)]
    head.jobs[evil.submission_id] = evil

    state = job.wait(interval=0)
    assert (state.status, state.done, state.failed) == ("Done", 4, 0)
    assert [v.result for v in job.results()] == [f"echo row {i}" for i in range(4)]  # no FORGED answer
    assert state.view["refused_rows"] == 11 + 4  # the first said: the other job's
    assert "was not submitted from here" in state.view["refused"]
    ledger = ledger_mod.default_ledger()
    ledger.flush()
    rows = [r for r in ledger.rows() if r.api == "batch-job"]
    assert [(r.prompt_tokens, r.completion_tokens) for r in rows if r.job.endswith(job.task_id)] == [(12, 8)]
    assert all(r.prompt_tokens >= 0 and r.completion_tokens >= 0 for r in rows)
    assert spend.spent_tokens == 20 and spend.reserved_tokens == 0  # the honest four rows: 3 + 2 each


def test_a_silent_head_a_huge_log_and_an_endless_job_are_given_up_on(head: FakeJobs,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    head.rows_per_read = 0  # a head that says RUNNING for ever
    job = ChatCompletion(model=MODEL).batch_do(_prompts(2), target=REMOTE, max_output_tokens=4)
    honest = head.get_job_logs
    monkeypatch.setattr(jobs_api, "MAX_LOG_BYTES", 10_000)
    monkeypatch.setattr(head, "get_job_logs", lambda sid: "x" * 20_000)
    with pytest.raises(ValidationError, match=r"log of Ray job .* past 10,000 \(jobs.MAX_LOG_BYTES\)"):
        job.state()
    monkeypatch.setattr(head, "get_job_logs", honest)
    monkeypatch.setattr(jobs_api, "API_TIMEOUT", 0.3)
    monkeypatch.setattr(head, "get_job_info", lambda sid: time.sleep(5))
    begun = time.monotonic()
    with pytest.raises(ValidationError, match=r"did not answer a Jobs API call in 0.3 s \(jobs.API_TIMEOUT\)"):
        job.state()
    assert time.monotonic() - begun < 3
    monkeypatch.setattr(jobs_api, "API_TIMEOUT", 60.0)
    monkeypatch.setattr(head, "get_job_info", FakeJobs.get_job_info.__get__(head))
    with pytest.raises(TimeoutError, match=f"batch job {job.task_id} has not ended after 0.5 s"):
        job.wait(interval=0.05, timeout=0.5)
    assert os.path.exists(default_data_dir() / "ray-journal" / f"{job.task_id}.json")

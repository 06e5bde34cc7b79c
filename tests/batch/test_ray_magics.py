"""``%qfeval --target ray://...`` and ``%qfbatch --target ray://...`` in a kernel, against the fake
Ray Jobs API (``ray_doubles``: each row answered ``"echo <prompt>"``, 3 prompt + 2 completion tokens):
the rows are answered on the cluster, the report is made from them, the dataset keeps the prompts,
and the ledger holds the rows' tokens; an Interrupt stops the Ray job and the same line resumes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from ray_doubles import FakeJobs

from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.cache import set_process_mode
from qfnb.notebook.errors import QfnbInterrupted
from qfnb.notebook.models.discovery import ModelList
from qfnb.resources.batch import ray_jobs as batch_ray
from tests.notebook.nb_doubles import RecordingPublisher

TARGET = "ray://127.0.0.1:8265"
MODEL = "Gemma-3-270M"
ROWS = [{"prompt": "hello", "response": [["echo hello"]]}, {"prompt": "two", "response": [["other"]]},
        {"prompt": "three", "response": [["echo three"]]}, {"prompt": "four", "response": [["echo four"]]}]


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch, own_record_dir: None) -> Iterator[FakeJobs]:
    """The fake Jobs API, and this test's own ledger (not the worker's, which other tests write)."""
    fake = FakeJobs()
    monkeypatch.setattr(batch_ray, "connect", lambda target: fake)
    yield fake


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("QFNB_EVAL_STORE", str(tmp_path / "answers.sqlite"))
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance()
    ip.display_pub = RecordingPublisher(shell=ip)
    ip.extension_manager.load_extension("qfnb")
    ip.magics_manager.registry["QfnbMagics"].list_models = lambda: ModelList([], "test")
    yield ip
    InteractiveShell.clear_instance()
    set_process_mode("off")  # loading the extension turned this process's response cache on


def _batch_rows(jobs: FakeJobs) -> list[Any]:
    """The ledger's rows of these Ray jobs."""
    ledger = ledger_mod.default_ledger()
    ledger.flush()
    return [r for r in ledger.rows() if r.api == "batch-job" and r.job.removeprefix("batch-job ") in jobs.jobs]


def test_qfeval_on_a_ray_target_answers_on_the_cluster_and_reports(jobs: FakeJobs, shell: InteractiveShell,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    report = shell.run_line_magic(
        "qfeval", f"--models {MODEL} --dataset {data} --metrics exact_match --target {TARGET} -o res")
    assert len(jobs.jobs) == 1
    (ray_job,) = jobs.jobs.values()
    assert ray_job.status == "SUCCEEDED" and ray_job.metadata["qfnb_total"] == "4"
    assert [r["body"]["messages"][-1]["content"] for r in ray_job.rows] == [r["prompt"] for r in ROWS]
    res = shell.user_ns["res"]
    assert res.samples_df[f"{MODEL}/output"].tolist() == [f"echo {r['prompt']}" for r in ROWS]
    assert res.metrics[MODEL]["exact_match"] == pytest.approx(3 / 4)
    assert ray_job.submission_id in repr(report) and "4 rows" in repr(report)
    rows = _batch_rows(jobs)
    assert [r.job for r in rows] == [f"batch-job {ray_job.submission_id}"]
    assert (rows[0].prompt_tokens, rows[0].completion_tokens, rows[0].model) == (12, 8, MODEL)
    assert rows[0].platform == "ray"  # the target's kind: the cluster's own engines, priced ¥0

    # the same line again: every answer is in the store, nothing goes to the cluster
    shell.run_line_magic(
        "qfeval", f"--models {MODEL} --dataset {data} --metrics exact_match --target {TARGET} -o again")
    assert len(jobs.jobs) == 1 and shell.user_ns["again"].metrics_df.equals(res.metrics_df)


def test_qfeval_s_malformed_target_is_refused_by_name_before_anything_is_sent(
        jobs: FakeJobs, shell: InteractiveShell, tmp_path: Path) -> None:
    from IPython.core.error import UsageError

    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    with pytest.raises(UsageError, match=r"--target: 'ray://head' is malformed"):  # parsed at the line, once
        shell.run_line_magic("qfeval", f"--models {MODEL} --dataset {data} --metrics exact_match --target ray://head")
    assert not jobs.jobs


def test_qfbatch_on_a_ray_target_keeps_prompts_and_an_interrupt_stops_then_resumes(
        jobs: FakeJobs, shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.notebook.data import batch as batchwatch

    shell.user_ns["prompts"] = [f"p{i}" for i in range(6)]
    real = batchwatch.watch

    def interrupted(job: Any, **kwargs: Any) -> Any:
        def stop(_: float) -> None:
            raise KeyboardInterrupt

        return real(job, **{**kwargs, "sleep": stop})

    monkeypatch.setattr(batchwatch, "watch", interrupted)
    with pytest.raises(QfnbInterrupted, match="stopped Ray job"):
        shell.run_line_magic("qfbatch", f"prompts -m {MODEL} --target {TARGET}")
    (first,) = jobs.jobs.values()
    assert first.status == "STOPPED"
    monkeypatch.setattr(batchwatch, "watch", real)
    ds = shell.run_line_magic("qfbatch", f"prompts -m {MODEL} --target {TARGET}")
    frame = ds.to_pandas()
    assert frame["prompt"].tolist() == [f"p{i}" for i in range(6)]
    assert frame["llm_output"].tolist() == [f"echo p{i}" for i in range(6)]
    second = jobs.jobs[max(jobs.jobs)]
    assert second.submission_id != first.submission_id and second.status == "SUCCEEDED"
    answered_first = sum(line.startswith("QFNB-ROW") for line in first.printed)
    assert len(second.rows) == 6 - answered_first  # only the rows the stopped attempt did not answer
    rows = _batch_rows(jobs)
    assert sorted(r.job for r in rows) == sorted(f"batch-job {j}" for j in jobs.jobs)  # each attempt once
    # six answers (3 + 2 each) and the row in flight at the stop: 3 + 1 from the stopped attempt's log, the
    # rest of its lost answer up to its cap (no max_tokens: the default 1,024) with the attempt that answered it
    from qfnb.protocol.limits import DEFAULT_OUTPUT_TOKENS

    assert (sum(r.prompt_tokens for r in rows), sum(r.completion_tokens for r in rows)) == (
        21, 12 + DEFAULT_OUTPUT_TOKENS)

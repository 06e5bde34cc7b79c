"""A batch on a Ray target, against a fake Jobs API (``ray_doubles``): the job is submitted with its
rows as the working dir and a submission id naming the qfnb job; stopped half-way and called again it
sends only the rows no attempt answered, so every row is answered once; the ledger holds every row's
tokens; bad targets are refused by name before anything is sent. The real head: ``test_ray_real.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ray_doubles import FakeJobs

from qfnb import ChatCompletion
from qfnb._core.errors import ValidationError
from qfnb._core.record import ledger as ledger_mod
from qfnb.local.cluster import jobs as jobs_api
from qfnb.resources.batch import ray_jobs as batch_ray
from qfnb.resources.batch_job import BatchJob
from qfnb.resources.targets import JobTarget, check_platform, parse_target

TARGET = "ray://127.0.0.1:8265"
MODEL = "Gemma-3-270M"


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch, own_record_dir: None) -> Iterator[FakeJobs]:
    """The fake Jobs API, and this test's own ledger (a worker's earlier batch jobs are not in it)."""
    fake = FakeJobs()
    monkeypatch.setattr(batch_ray, "connect", lambda target: fake)
    yield fake


def _prompts(n: int) -> list[list[dict[str, Any]]]:
    return [[{"role": "user", "content": f"row {i}"}] for i in range(n)]


def test_stopped_half_way_the_same_call_resumes_and_each_row_is_answered_once(jobs: FakeJobs) -> None:
    chat = ChatCompletion(model=MODEL)
    job = chat.batch_do(_prompts(10), target=TARGET, max_output_tokens=4)
    assert isinstance(job, BatchJob) and job.on_cluster
    first = jobs.jobs[job.task_id]
    assert job.task_id.startswith("qfnb-") and job.task_id.endswith("-1")
    assert "-m qfnb.local.cluster.ray_batch" in first.entrypoint and f"--model {MODEL}" in first.entrypoint
    assert first.metadata["qfnb_total"] == "10" and first.rows[0]["body"]["max_completion_tokens"] == 4
    for _ in range(5):
        job.state()
    jobs.stop_job(job.task_id)  # stopped through the Jobs API, half-way
    stopped = job.state()
    assert (stopped.status, stopped.done) == ("Stopped", 5)

    again = chat.batch_do(_prompts(10), target=TARGET, max_output_tokens=4)
    assert again.task_id.endswith("-2")
    assert [r["custom_id"] for r in jobs.jobs[again.task_id].rows] == [str(i) for i in range(5, 10)]
    state = again.wait(interval=0)
    assert (state.status, state.done, state.failed, state.total) == ("Done", 10, 0, 10)
    values = again.results()
    assert [v.result for v in values] == [f"echo row {i}" for i in range(10)]
    assert jobs.jobs[again.task_id].status == "SUCCEEDED"

    ledger = ledger_mod.default_ledger()
    ledger.flush()
    rows = [r for r in ledger.rows() if r.api == "batch-job"]
    assert sorted(r.job for r in rows) == [f"batch-job {job.task_id}", f"batch-job {again.task_id}"]
    # every answer's tokens, and the row in flight when the first attempt was stopped: 3 + 1 from its log,
    # the rest of its lost answer at its cap (4) with the attempt that answered the row
    assert sum(r.prompt_tokens for r in rows) == 33 and sum(r.completion_tokens for r in rows) == 24
    assert again.prompts(state) == [f"row {i}" for i in range(10)]
    assert {r.model for r in rows} == {MODEL}

    # a third call finds every row answered: nothing is submitted
    third = chat.batch_do(_prompts(10), target=TARGET, max_output_tokens=4)
    assert third.task_id == again.task_id and len(jobs.jobs) == 2


def test_a_running_attempt_is_attached_to_not_submitted_twice(jobs: FakeJobs) -> None:
    first = BatchJob.submit(_prompts(4), model=MODEL, target=TARGET)
    second = BatchJob.submit(_prompts(4), model=MODEL, target=TARGET)
    assert second.task_id == first.task_id and len(jobs.jobs) == 1


def test_interrupting_the_bar_stops_the_ray_job(jobs: FakeJobs) -> None:
    from qfnb.notebook.data.batch import watch
    from qfnb.notebook.errors import QfnbInterrupted

    job = BatchJob.submit(_prompts(6), model=MODEL, target=TARGET)

    class Bar:
        def show(self, state: Any, note: str = "") -> None:
            pass

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(QfnbInterrupted, match="stopped Ray job"):
        watch(job, bar=Bar(), sleep=interrupt)
    assert jobs.jobs[job.task_id].status == "STOPPED"


@pytest.mark.parametrize(("value", "problem"), [
    ("ray://127.0.0.1", "malformed"), ("ray://:8265", "malformed"), ("ray://h:99999", "malformed"),
    ("ray://h:8265/jobs", "malformed"), ("http://h:8265", "not a target"), ("cloud", "not a target")])
def test_a_malformed_target_is_refused_by_name(value: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=f"target.*{problem}"):
        parse_target(value)


def test_targets_by_name_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_target("local") == JobTarget("local") and parse_target("QIANFAN") == JobTarget("qianfan")
    assert parse_target(None) is None
    monkeypatch.setenv("QFNB_TARGET", "ray://localhost:9000")
    where = parse_target(None)
    assert where is not None and where.url == "http://localhost:9000" and where.same_machine
    monkeypatch.setenv("QFNB_TARGET", "nowhere")
    with pytest.raises(ValidationError, match="QFNB_TARGET"):
        parse_target(None)


def test_qianfan_without_credentials_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValidationError, match=r"'qianfan' .* no Qianfan credentials"):
        check_platform(JobTarget("qianfan"), _embedded())


def _embedded() -> Any:
    from dataclasses import replace

    from qfnb._core.config import Config

    return replace(Config.from_env(), embedded=True)


def test_an_unreachable_head_and_an_old_ray_are_refused_by_name() -> None:
    pytest.importorskip("ray.job_submission")
    with pytest.raises(ValidationError, match=r"target.*no Ray head answers at ray://127.0.0.1:9"):
        BatchJob.submit(_prompts(2), model=MODEL, target="ray://127.0.0.1:9")
    assert "runs Ray 2.5.0; qfnb speaks Ray 2.x from 2.9" in str(jobs_api.ray_version_problem("2.5.0"))
    assert "runs Ray 3.0.0" in str(jobs_api.ray_version_problem("3.0.0"))


def test_a_just_started_head_without_its_job_agent_is_waited_for(jobs: FakeJobs,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    refusals = [RuntimeError("Request failed with status code 500: No available agent to submit job")]
    submit = jobs.submit_job

    def flaky(**job: Any) -> str:
        if refusals:
            raise refusals.pop()
        return submit(**job)

    monkeypatch.setattr(jobs, "submit_job", flaky)
    job = BatchJob.submit(_prompts(2), model=MODEL, target=TARGET)
    assert not refusals and job.task_id in jobs.jobs


def test_a_head_whose_job_agent_never_starts_is_refused_by_name(jobs: FakeJobs,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**job: Any) -> str:
        raise RuntimeError("Request failed with status code 500: No available agent to submit job")

    monkeypatch.setattr(jobs, "submit_job", refuse)
    monkeypatch.setattr(jobs_api, "AGENT_WAIT", 0.0)
    with pytest.raises(ValidationError, match=r"target.*takes no jobs.*dashboard-agent-listen-port.*nothing was run"):
        BatchJob.submit(_prompts(2), model=MODEL, target=TARGET)
    assert not jobs.jobs


def test_a_job_killed_by_ray_says_why_and_the_same_call_resumes_it(jobs: FakeJobs) -> None:
    chat = ChatCompletion(model=MODEL)
    job = chat.batch_do(_prompts(6), target=TARGET, max_output_tokens=4)
    for _ in range(3):
        job.state()
    reason = "Job supervisor actor died: the actor's node was killed for running out of memory"
    jobs.kill(job.task_id, reason)
    killed = job.state()
    assert (killed.status, killed.done, killed.view["errorReason"]) == ("Failed", 3, reason)
    again = chat.batch_do(_prompts(6), target=TARGET, max_output_tokens=4)
    assert again.task_id.endswith("-2") and [r["custom_id"] for r in jobs.jobs[again.task_id].rows] == ["3", "4", "5"]
    assert again.wait(interval=0).done == 6
    values = again.results()
    assert [v.result for v in values] == [f"echo row {i}" for i in range(6)]


def test_a_row_at_a_worker_when_its_driver_died_is_paid_once(jobs: FakeJobs) -> None:
    """A driver SIGKILLed with a row at a worker (its ``QFNB-SENT`` line printed, its answer never):
    the engine had it, so it is paid: one request more and its answer at its cap in the ledger row of
    the attempt that lost it, its prompt as its answer's (exact: the same row) in the ledger row of
    the attempt that answers it (the chaos bench's Ray phase: 8 such sends, 24 prompt tokens, paid by
    nobody)."""
    chat = ChatCompletion(model=MODEL)
    job = chat.batch_do(_prompts(6), target=TARGET, max_output_tokens=4)
    for _ in range(3):
        job.state()
    jobs.kill(job.task_id, "Job entrypoint command failed with exit code -9")
    assert jobs.jobs[job.task_id].printed[-1].startswith("QFNB-SENT ")  # row 3 was at a worker
    again = chat.batch_do(_prompts(6), target=TARGET, max_output_tokens=4)
    assert again.wait(interval=0).done == 6 and again.state().view["repeatedRequests"] == 1
    ledger = ledger_mod.default_ledger()
    ledger.flush()
    rows = {r.job: r for r in ledger.rows() if r.api == "batch-job"}
    first, second = rows[f"batch-job {job.task_id}"], rows[f"batch-job {again.task_id}"]
    assert (first.prompt_tokens, first.completion_tokens, first.requests) == (9, 6 + 4, 3 + 1)
    assert (second.prompt_tokens, second.completion_tokens, second.requests) == (9 + 3, 6, 3)


def test_a_killed_attempts_row_that_no_attempt_answers_is_paid_by_the_killed_attempt(jobs: FakeJobs) -> None:
    """The user never runs the cell again: the row the killed driver had at a worker is still paid,
    one request and its answer at its cap (its prompt's count comes only with an answer)."""
    job = ChatCompletion(model=MODEL).batch_do(_prompts(6), target=TARGET, max_output_tokens=4)
    for _ in range(3):
        job.state()
    jobs.kill(job.task_id, "Job entrypoint command failed with exit code -9")
    state = job.state()
    assert (state.status, state.done, state.view["repeatedRequests"]) == ("Failed", 3, 1)
    job.wait(interval=0)  # an ended job's usage goes to the ledger as it is read
    ledger = ledger_mod.default_ledger()
    ledger.flush()
    (row,) = [r for r in ledger.rows() if r.api == "batch-job"]
    assert (row.prompt_tokens, row.completion_tokens, row.requests) == (9, 6 + 4, 3 + 1)


def test_a_workers_retry_after_an_engine_crash_is_paid(jobs: FakeJobs) -> None:
    """A worker whose engine crashed with a row sends it again: the lost sending is on the row's line
    and paid in its attempt's ledger row (its prompt as the answer's, its answer at its cap), once;
    the row's answer is its own and shows no journal field."""
    jobs.lost_once.add("row 1")
    job = ChatCompletion(model=MODEL).batch_do(_prompts(3), target=TARGET, max_output_tokens=4)
    state = job.wait(interval=0)
    assert (state.done, state.view["repeatedRequests"]) == (3, 1)
    assert [v.result for v in job.results()] == [f"echo row {i}" for i in range(3)]
    job.state()  # read again: nothing is counted twice
    ledger = ledger_mod.default_ledger()
    ledger.flush()
    (row,) = [r for r in ledger.rows() if r.api == "batch-job"]
    assert (row.prompt_tokens, row.completion_tokens, row.requests) == (9 + 3, 6 + 4, 3 + 1)


def test_a_head_running_a_ray_this_client_does_not_speak_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    submission = pytest.importorskip("ray.job_submission")

    class NewHead:
        def __init__(self, url: str) -> None:
            self._server_ray_version = "3.1.0"  # what the head answered to the version check

    monkeypatch.setattr(submission, "JobSubmissionClient", NewHead)
    with pytest.raises(ValidationError, match=r"target.*runs Ray 3\.1\.0; qfnb speaks Ray 2\.x from 2\.9"):
        BatchJob.submit(_prompts(2), model=MODEL, target="ray://h:8265")


def test_calling_a_job_with_error_rows_again_sends_those_rows(jobs: FakeJobs) -> None:
    """docs/ray.md: an error row is tried again. A finished job was reused whole (%qfbatch reuses), its
    error rows never retried."""
    jobs.fail_once.add("row 2")
    first = BatchJob.submit(_prompts(4), model=MODEL, target=TARGET, reuse=True, attach=True)
    state = first.wait(interval=0)
    assert (state.status, state.done, state.failed) == ("Done", 3, 1)
    again = BatchJob.submit(_prompts(4), model=MODEL, target=TARGET, reuse=True, attach=True)
    assert again.reused is None and again.task_id.endswith("-2")
    assert [r["custom_id"] for r in jobs.jobs[again.task_id].rows] == ["2"]
    assert (again.wait(interval=0).done, again.state().failed) == (4, 0)
    assert [v.result for v in again.results()] == [f"echo row {i}" for i in range(4)]
    third = BatchJob.submit(_prompts(4), model=MODEL, target=TARGET, reuse=True, attach=True)
    assert third.reused is not None and len(jobs.jobs) == 2  # every row answered: nothing sent


def test_a_ray_batch_uses_the_default_model_and_counts_at_the_local_price(jobs: FakeJobs) -> None:
    """``ChatCompletion().batch_do(prompts, target="ray://...")`` was refused for want of model=; the
    rows it ran on the cluster's engines were priced as a cloud model's (NaN in one kernel)."""
    from qfnb import usage
    from qfnb.protocol.console.model_names import LOCAL_DEFAULT_MODELS

    job = ChatCompletion().batch_do(_prompts(3), target=TARGET)
    assert jobs.jobs[job.task_id].rows[0]["body"]["model"] == LOCAL_DEFAULT_MODELS["chat"]
    job.wait(interval=0)
    table = usage.summary(by="model", session=None)
    (model,) = table.index
    assert table.loc[model, "target"] == "ray" and table.loc[model, "price"] == "local"
    assert (table.loc[model, "cost_yuan"], table.loc[model, "real_time_yuan"]) == (0.0, 0.0)
    with pytest.raises(ValidationError, match=r"output_file.*not used by a durable batch"):
        ChatCompletion().batch_do(_prompts(3), target=TARGET, output_file="answers.jsonl")


def test_every_row_is_a_span_and_a_call_and_the_slowest_is_found(jobs: FakeJobs) -> None:
    """/metrics and %qftrace had no Ray rows (they ran on the workers' engines): each row is now one
    call in the ledger (the job's ``requests``) and one span under the job's, with its worker's time."""
    from qfnb import usage
    from qfnb._core.record.traces import read_spans
    from qfnb.notebook.ledger.traces import TraceMagics

    job = ChatCompletion(model=MODEL).batch_do(_prompts(5), target=TARGET)
    job.wait(interval=0)
    job.wait(interval=0)  # read again: still one ledger row and one set of spans
    (row,) = [r for r in ledger_mod.default_ledger().rows() if r.api == "batch-job"]
    assert row.requests == 5 and usage.summary(by="model", session=None).loc[MODEL, "calls"] == 5
    spans = read_spans(last=100)
    rows = [s for s in spans if s.operation == "chat"]
    (parent,) = [s for s in spans if s.operation == "batch"]
    assert len(rows) == 5 and {s.parent_id for s in rows} == {parent.span_id}
    assert sum(s.input_tokens for s in rows) == row.prompt_tokens and sum(s.output_tokens for s in rows) == 10
    view = TraceMagics(shell=None).qftrace("1 --slowest")
    (slowest,) = view.spans
    assert slowest.duration_s == pytest.approx(0.5) and "row 4" in view._repr_html_()

"""What a durable batch job is, whichever backend runs it (qfnb.resources.batch.state): a job found again only
by its fingerprint's mark and only when it ended Done (or, for a restarted kernel, still runs), an output row's
answer, input index and error read the same from every backend, and a row's span for the trace."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb.resources.batch.state import MARK, JobState, answered, done_twin, row_error, row_index, row_spans


def job(task_id: str, status: str, mark: str = "", *, done: int = 0, total: int = 10, seconds: float = 0.0,
        tokens: int = 0, in_metadata: bool = False) -> JobState:
    view = {"metadata": {"description": mark}} if in_metadata else {"description": mark}
    return JobState(task_id, task_id, status, done, 0, total, tokens, seconds, view)


def test_a_job_is_found_again_by_its_mark_and_only_when_it_ended_done() -> None:
    mine = MARK + "abc"
    jobs = [job("old", "Done", mine), job("failed", "Failed", mine), job("other", "Done", MARK + "xyz"),
            job("new", "Done", mine, in_metadata=True), job("going", "Running", mine)]
    twin = done_twin(jobs, "abc")
    assert twin is not None and twin.task_id == "new"
    running = done_twin(jobs, "abc", running=True)
    assert running is not None and running.task_id == "going"
    assert done_twin([job("stopped", "Stopped", mine)], "abc", running=True) is None


def test_a_running_jobs_speed_and_eta_come_from_its_counts() -> None:
    going = job("j", "Running", done=4, total=10, seconds=8.0, tokens=400)
    assert (going.finished, going.tokens_per_second, going.eta_seconds) == (False, 50.0, 12.0)
    assert job("j", "Done", done=10, seconds=8.0).eta_seconds is None
    assert job("j", "Running").tokens_per_second == 0.0


OK_ROW: dict[str, Any] = {"custom_id": "3", "response": {"status_code": 200, "body": {
    "choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}},
    "qfnb_seconds": 0.5}
ERROR_ROW: dict[str, Any] = {"line": 7, "error": {"code": "rate_limit", "message": "slow down"}}


def test_rows_read_alike_from_every_backend() -> None:
    assert answered(OK_ROW) == OK_ROW["response"]["body"] and answered(ERROR_ROW) is None
    assert answered({"response": {"status_code": 500, "body": {"error": {"message": "x"}}}}) is None
    assert (row_index(OK_ROW), row_index(ERROR_ROW), row_index({"custom_id": "x"})) == (3, 6, -1)
    assert str(row_error(ERROR_ROW)) == "rate_limit: slow down"
    assert str(row_error({"response": {"body": {"error": "boom"}}})) == "error: boom"


@pytest.mark.parametrize(("row", "span"), [
    (OK_ROW, ("3", 5, 2, 0.5, 200)),
    (ERROR_ROW, ("None", 0, 0, 0.0, 500)),
])
def test_each_row_is_one_span(row: dict[str, Any], span: tuple[object, ...]) -> None:
    (got,) = row_spans([row])
    assert (got.custom_id, got.prompt_tokens, got.completion_tokens, got.seconds, got.status) == span

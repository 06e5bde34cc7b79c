"""Jobs in the usage ledger: a batch's calls share one job, an evaluation's calls (its batches
included) share one, and a durable batch task's tokens are recorded once when it ends."""

from __future__ import annotations

from typing import Any

import pytest

import qfnb
import qfnb.usage
from qfnb._core.record import ledger as ledger_mod
from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator
from qfnb.resources import batch_job

MSG = [{"role": "user", "content": "hi"}]


pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py


def _jobs() -> list[str | None]:
    return [r.job for r in ledger_mod.default_ledger().rows()]


def test_a_batchs_calls_are_one_job_and_an_evaluations_another(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config("oauth"))
    chat.batch_do([[{"role": "user", "content": f"q{i}"}] for i in range(3)], worker_num=2).results()
    chat.do(messages=MSG)
    jobs = _jobs()
    assert len(set(jobs[:3])) == 1 and str(jobs[0]).startswith("batch ") and jobs[3] is None
    EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval(
        {"chat": chat}, [{"prompt": "a", "response": [["b"]]}, {"prompt": "c", "response": [["d"]]}], worker_num=2)
    evaluation = _jobs()[4:]
    assert len(evaluation) == 2 and len(set(evaluation)) == 1 and str(evaluation[0]).startswith("evaluation ")
    summary = qfnb.usage.summary(by="job")
    assert summary.loc[jobs[0], "calls"] == 3 and summary.loc[evaluation[0], "calls"] == 2


def test_a_durable_batch_tasks_tokens_are_recorded_once(make_config: Any) -> None:
    view = {"taskId": "bt-1", "name": "n", "runStatus": "Done", "succeededCount": 2, "totalCount": 2,
            "inputTokenUsage": 11, "outputTokenUsage": 7, "runSeconds": 3.0, "endpoint": "ernie-speed-8k"}
    state = batch_job.JobState.of(view)
    batch_job.record_job(state, make_config("oauth"))
    batch_job.record_job(state, make_config("oauth"))
    (row,) = ledger_mod.default_ledger().rows()
    assert (row.api, row.model, row.prompt_tokens, row.completion_tokens, row.total_tokens, row.job) == (
        "batch-job", "ernie-speed-8k", 11, 7, 18, "batch-job bt-1")

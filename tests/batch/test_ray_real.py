"""A batch of 40 rows on a real one-node Ray head this module starts (Gemma-3-270M on llama-server
in the Ray workers): stopped half-way through the Jobs API, run again by the same call, every row is
answered exactly once, the last attempt SUCCEEDED in Ray's job list, and the rows' tokens are in the
ledger. Minutes on 2 busy cores, so ``slow``; ``test_ray_target.py`` covers the same logic against a
fake Jobs API by default."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_head import ray_head

from qfnb import ChatCompletion
from qfnb._core.record import ledger as ledger_mod
from qfnb.local.cluster import jobs as jobs_mod
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.resources.batch import ray_jobs as batch_ray

# find_spec, not importorskip: importing Ray costs every collection seconds, and the module only runs with -m slow
pytestmark = [pytest.mark.slow, pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)"),
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray (the ray extra)")]

MODEL = "Gemma-3-270M"
ROWS = 40


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ray_head(tmp_path_factory.mktemp("ray")) as target:
        yield target


def test_a_batch_stopped_half_way_resumes_on_the_cluster(head: str, tmp_path: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    ledger_mod._default.clear()
    prompts = [[{"role": "user", "content": f"Say the number {i}."}] for i in range(ROWS)]
    chat = ChatCompletion(model=MODEL)
    job = chat.batch_do(prompts, target=head, max_output_tokens=6)
    jobs = JobSubmissionClient(head.replace("ray://", "http://"))
    deadline = time.monotonic() + 600
    while job.state().done < ROWS // 2:
        assert time.monotonic() < deadline and not job.state().finished
        time.sleep(0.5)
    jobs.stop_job(job.task_id)
    while not (stopped := job.state()).finished:
        time.sleep(0.5)
    assert stopped.status == "Stopped" and ROWS // 2 <= stopped.done < ROWS

    again = chat.batch_do(prompts, target=head, max_output_tokens=6)
    assert again.task_id != job.task_id
    state = again.wait()
    assert (state.status, state.done, state.failed) == ("Done", ROWS, 0)
    output = _rows(again)
    assert sorted(int(r["custom_id"]) for r in output) == list(range(ROWS))  # each row once
    assert all(v is not None and not isinstance(v, Exception) for v in again.results())
    assert jobs.get_job_info(again.task_id).status == "SUCCEEDED"

    ledger = ledger_mod.default_ledger()
    ledger.flush()
    rows = {r.job: r for r in ledger.rows() if r.api == "batch-job" and r.job in
            (f"batch-job {job.task_id}", f"batch-job {again.task_id}")}
    assert len(rows) == 2 and {r.model for r in rows.values()} == {MODEL}
    # each attempt pays its answers, its rows in flight at the stop (QFNB-SPENT) and the sends it lost in flight
    # (its own, each at most its cap); the prompt of a lost send is paid by the attempt that answers its row
    widest = lost_in_all = prompt_over = 0
    for attempt in (job.task_id, again.task_id):
        logs = jobs.get_job_logs(attempt)
        answered = batch_ray.log_rows(logs)
        prompt, completion, _ = batch_ray.usage_of(answered, batch_ray.log_lines(logs, "QFNB-SPENT "))
        widest = max([widest, *(int(((r.get("response") or {}).get("body") or {}).get("usage", {}).get(
            "prompt_tokens") or 0) for r in answered)])
        ended = {str(r.get("custom_id")) for r in answered}
        lost = sum(len(r.get(jobs_mod.LOST_KEY) or ()) for r in answered) + sum(
            str(s["custom_id"]) not in ended for s in batch_ray.log_lines(logs, "QFNB-SENT "))
        paid = rows[f"batch-job {attempt}"]
        assert completion > 0 and 0 <= paid.completion_tokens - completion <= 6 * lost, (paid, completion, lost)
        assert paid.prompt_tokens >= prompt, (paid, prompt)
        lost_in_all, prompt_over = lost_in_all + lost, prompt_over + paid.prompt_tokens - prompt
    assert prompt_over <= widest * lost_in_all, (prompt_over, widest, lost_in_all)
    spent = batch_ray.log_lines(jobs.get_job_logs(job.task_id), "QFNB-SPENT ")
    print(f"rows in flight at the stop, with their tokens counted: {spent}")


def _rows(job: object) -> list[dict[str, object]]:
    import asyncio

    async def collect() -> list[dict[str, object]]:
        return [r async for r in job.aiter_rows("output")]  # type: ignore[attr-defined]

    return asyncio.run(collect())

"""``BatchJob`` on the cloud with only a v2 API key goes through the Files + Batch API
(cloud.baidu.com/doc/qianfan/s/Oml4r78ea): an upload and a batch, never the console task, BOS or
``/rpc/2.0``; results in input order, re-attach by id and by fingerprint, cancel, the ledger row
at the batch price's kind once, and a budget the rows' worst case would cross refused before upload."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.http.recording.recorded import with_output_cap, worst_case
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import BudgetExceeded, budget, clear_budget
from qfnb.resources import ChatCompletion
from qfnb.resources.batch.files import FilesBatches
from qfnb.resources.batch_job import BatchJob, backend_for
from tests.fakes.cloud import FakeQianfan
from tests.fakes.cloud_v2_batches import V2_KEY, FilesBatchesDouble, install_files_batches, key_only_batch_config
from tests.fakes.fixtures import fake, fake_in_process  # noqa: F401

MODEL = "ernie-4.5-turbo-128k"


@pytest.fixture()
def double(fake: FakeQianfan, own_record_dir: None) -> Iterator[FilesBatchesDouble]:  # noqa: F811
    yield install_files_batches(fake)
    clear_budget()



def _prompts(n: int) -> list[str]:
    return [f"question {i}" for i in range(n)]


def _paths(app: FakeQianfan) -> list[str]:
    return [f"{r.method} {r.path}" for r in app.requests]


def test_an_api_key_alone_picks_files_and_batches(fake: FakeQianfan) -> None:  # noqa: F811
    cfg = key_only_batch_config(fake)
    assert cfg.api_version == 2 and isinstance(backend_for(cfg), FilesBatches)
    with pytest.raises(ValidationError, match="a v2 batch names its model"):
        BatchJob.submit(_prompts(1), endpoint="ernie_speed", config=cfg)


def test_submit_uploads_and_creates_then_results_come_in_input_order(fake: FakeQianfan,  # noqa: F811
                                                                     double: FilesBatchesDouble) -> None:
    cfg = key_only_batch_config(fake)
    inputs: list[Any] = [*_prompts(3), {"messages": []}, [{"role": "user", "content": "last"}]]
    job = BatchJob.submit(inputs, model=MODEL, inference_params={"temperature": 0.5}, config=cfg)
    assert _paths(fake) == ["POST /v2/files", "POST /v2/batches"]
    assert not any("/rpc/2.0" in p or "batchinference" in p or "bos" in p.lower() for p in _paths(fake))
    assert all(r.headers["authorization"] == f"Bearer {V2_KEY}" for r in fake.requests)
    made = fake.requests[-1].json
    assert made["endpoint"] == "/v2/chat/completions" and made["completion_window"] == "24h"
    assert made["metadata"]["description"].startswith("qfnb-batch:")
    (uploaded,) = double.files.values()
    assert b'"model": "ernie-4.5-turbo-128k"' in uploaded["_content"] and b'"temperature": 0.5' in uploaded["_content"]
    assert job.task_id in double.batches

    seen: list[str] = []
    state = job.wait(interval=0, on_state=lambda s: seen.append(s.status))
    assert seen == ["Running", "Done"]  # validating -> in_progress (half) -> completed, one step per read
    assert (state.status, state.total, state.done, state.failed) == ("Done", 5, 4, 1)

    values = job.results()
    assert [v.body["result"] for v in values if not isinstance(v, Exception)] == [
        f"echo[{MODEL}]: question {i}" for i in range(3)] + [f"echo[{MODEL}]: last"]
    assert isinstance(values[3], QfnbError) and "messages is required" in str(values[3])
    assert values[0].body["object"] == "chat.completion" and values[0].body["model"] == MODEL  # the v2 body kept
    assert [i for i, _ in job.iter_results()] == [0, 1, 2, 4, 3]  # answers, then errors
    assert BatchJob.list(cfg)[-1].task_id == job.task_id


def test_a_new_handle_reattaches_by_id_and_by_fingerprint_without_uploading(fake: FakeQianfan,  # noqa: F811
                                                                            double: FilesBatchesDouble) -> None:
    cfg = key_only_batch_config(fake)
    job = BatchJob.submit(_prompts(4), model=MODEL, config=cfg)
    uploads = len(double.files)
    # a restarted kernel: the same rows find the running batch through the list
    again = BatchJob.submit(_prompts(4), model=MODEL, reuse=True, attach=True, config=cfg)
    assert again.task_id == job.task_id and again.attached is not None and again.reused is None
    assert len(double.files) == uploads and len(double.batches) == 1
    # by id, from another handle
    BatchJob.attach(job.task_id, config=cfg).wait(interval=0)
    assert BatchJob.attach(config=cfg).task_id == job.task_id
    # a finished twin is reused: nothing uploaded or run
    reused = BatchJob.submit(_prompts(4), model=MODEL, reuse=True, config=cfg)
    assert reused.task_id == job.task_id and reused.reused is not None and reused.reused.status == "Done"
    assert len(double.files) == uploads + 1  # + the output file the batch wrote
    # other rows are another batch
    other = BatchJob.submit(_prompts(5), model=MODEL, reuse=True, attach=True, config=cfg)
    assert other.task_id != job.task_id and len(double.batches) == 2


def test_stop_cancels_and_what_ran_stays(fake: FakeQianfan, double: FilesBatchesDouble) -> None:  # noqa: F811
    cfg = key_only_batch_config(fake)
    job = BatchJob.submit(_prompts(4), model=MODEL, config=cfg)
    assert job.state().status == "Running"  # half its rows answered
    assert job.stop().status == "Stopped"
    assert "POST /v2/batches/" + job.task_id + "/cancel" in _paths(fake)
    values = job.results()
    assert [v is not None for v in values] == [True, True, False, False]


def test_the_ended_batch_is_in_the_ledger_once_at_the_batch_kind(fake: FakeQianfan,  # noqa: F811
                                                                 double: FilesBatchesDouble) -> None:
    cfg = key_only_batch_config(fake)
    job = BatchJob.submit(_prompts(3), model=MODEL, config=cfg)
    job.wait(interval=0)
    BatchJob(job.task_id, cfg).wait(interval=0)  # read again, by another handle: still one row
    prompt = sum(len(p) for p in _prompts(3))
    completion = sum(len(f"echo[{MODEL}]: {p}") for p in _prompts(3))
    (row,) = [r for r in ledger_mod.default_ledger().rows() if r.job == f"batch-job {job.task_id}"]
    assert (row.api, row.model, row.platform) == ("batch-job", MODEL, "cloud")
    assert (row.prompt_tokens, row.completion_tokens) == (prompt, completion)
    # priced at the batch price (40 % of real time), with the real-time figure beside it
    from qfnb import usage
    from qfnb.notebook.ledger.usage import batch_saving

    table = usage.summary(by="model", session=None)
    cost, real_time = table.loc[MODEL, "cost_yuan"], table.loc[MODEL, "real_time_yuan"]
    assert real_time == pytest.approx((prompt * 0.0008 + completion * 0.0032) / 1000)
    assert cost == pytest.approx(real_time * 0.4)
    said = batch_saving(table)
    assert said is not None and f"instead of ¥{real_time:.4f} in real time" in said


def test_a_budget_the_worst_case_would_cross_is_refused_before_upload(fake: FakeQianfan,  # noqa: F811
                                                                      double: FilesBatchesDouble) -> None:
    cfg = key_only_batch_config(fake)
    rows = [[{"role": "user", "content": p}] for p in _prompts(3)]
    worst = sum(worst_case(with_output_cap("v2/chat", {"model": MODEL, "messages": r}), "v2/chat") for r in rows)
    spend = budget(tokens=worst - 1)
    with pytest.raises(BudgetExceeded, match="a durable batch of 3 rows may use up to"):
        ChatCompletion(model=MODEL, config=cfg).batch_do(rows, durable=True)
    assert fake.requests == [] and (spend.spent_tokens, spend.reserved_tokens) == (0, 0)
    spend = budget(tokens=worst + 1_000)
    job = BatchJob.submit(rows, model=MODEL, config=cfg)
    assert spend.reserved_tokens == worst and spend.spent_tokens == 0  # held while it runs
    job.wait(interval=0)
    (row,) = [r for r in ledger_mod.default_ledger().rows() if r.job == f"batch-job {job.task_id}"]
    assert (spend.spent_tokens, spend.reserved_tokens) == (row.total_tokens, 0)

"""Numbers a manager can trust (issue 71), on the cloud's Files + Batch double: each row's body under
the v2 API's names, one price per model (forecast, budget refusal, ledger), a reused batch never
counted again as calls or ¥, and the defaults and options of a durable ``batch_do``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from qfnb import usage
from qfnb._core.errors import ValidationError
from qfnb._core.http.recording import batch_hold
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import BudgetExceeded, budget, clear_budget
from qfnb._core.record.prices import price_label, prices
from qfnb.resources import ChatCompletion
from qfnb.resources.batch_job import BatchJob
from qfnb.resources.forecasting import forecast
from tests.fakes.cloud import FakeQianfan
from tests.fakes.cloud_v2_batches import FilesBatchesDouble, install_files_batches, key_only_batch_config
from tests.fakes.fixtures import fake, fake_in_process  # noqa: F401

MODEL = "ernie-4.5-turbo-128k"


@pytest.fixture()
def double(fake: FakeQianfan, own_record_dir: None) -> Iterator[FilesBatchesDouble]:  # noqa: F811
    yield install_files_batches(fake)
    clear_budget()



def _uploaded_rows(double: FilesBatchesDouble) -> list[dict[str, object]]:
    (uploaded,) = double.files.values()
    return [json.loads(line) for line in uploaded["_content"].decode().splitlines() if line.strip()]


def test_v2_rows_carry_the_v2_field_names(fake: FakeQianfan, double: FilesBatchesDouble) -> None:  # noqa: F811
    """The task's ``max_output_tokens`` (v1's name, as %qfbatch's sampling gives it) went into every
    row as is, where the v2 API reads ``max_completion_tokens``: the cap was not one the cloud reads."""
    BatchJob.submit(["one", {"messages": [{"role": "user", "content": "two"}], "user_id": "u1"}], model=MODEL,
                    inference_params={"max_output_tokens": 64, "temperature": 0.3}, config=key_only_batch_config(fake))
    bodies = [row["body"] for row in _uploaded_rows(double)]
    assert all(b["max_completion_tokens"] == 64 and "max_output_tokens" not in b for b in bodies)  # type: ignore[index]
    assert bodies[1]["user"] == "u1" and "user_id" not in bodies[1]  # type: ignore[index,operator]
    assert all(b["model"] == MODEL and b["temperature"] == 0.3 for b in bodies)  # type: ignore[index]


def test_a_budgets_cap_on_a_row_is_the_v2_name(fake: FakeQianfan, double: FilesBatchesDouble) -> None:  # noqa: F811
    budget(tokens=10_000_000)
    BatchJob.submit(["one"], model=MODEL, config=key_only_batch_config(fake))
    (row,) = _uploaded_rows(double)
    assert row["body"]["max_completion_tokens"] == 1024 and "max_tokens" not in row["body"]  # type: ignore[index]


def test_forecast_budget_and_ledger_name_one_price(fake: FakeQianfan, double: FilesBatchesDouble) -> None:  # noqa: F811
    """The dry-run said "no list price" (no answers on record to expect from) while the budget refused
    on the same table's worst case and the ledger charged its price."""
    cfg = key_only_batch_config(fake)
    said = price_label(MODEL, "cloud")
    unit = prices().models[MODEL]
    assert said.startswith(f"¥{unit[0]:g} in / ¥{unit[1]:g} out per 1k")
    ahead = forecast([f"question {i}" for i in range(20)], model=MODEL, max_tokens=50, batch=True, config=cfg)
    assert ahead.output_expected is None  # nothing on record: the bound only
    price = dict((a, b) for a, b, _ in ahead.rows())["price"]
    assert price == f"up to ¥{ahead.yuan_high:.4f}" and said in ahead.price_source
    budget(yuan=1e-6)
    with pytest.raises(BudgetExceeded, match=r"\(price of ernie-4\.5-turbo-128k: ¥"):
        BatchJob.submit(["one"], model=MODEL, config=cfg)
    clear_budget()
    job = BatchJob.submit(["one", "two"], model=MODEL, config=cfg)
    job.wait(interval=0)
    frame = usage.frame()
    assert list(frame["price"]) == [said]


def test_a_reused_batch_adds_no_calls_and_no_yuan(fake: FakeQianfan, double: FilesBatchesDouble,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Running the notebook again raised a batch's calls 1 → 3 and its ¥ threefold for a batch paid once."""
    cfg = key_only_batch_config(fake)
    prompts = [f"ticket {i}" for i in range(4)]
    BatchJob.submit(prompts, model=MODEL, reuse=True, config=cfg).wait(interval=0)
    first = usage.summary(by="model", session=None)
    for session in ("replay-1", "replay-2"):  # the notebook run again, in two kernels
        monkeypatch.setattr(batch_hold, "SESSION", session)
        again = BatchJob.submit(prompts, model=MODEL, reuse=True, config=cfg)
        assert again.reused is not None
        again.record(again.state(), reused=True)
    after = usage.summary(by="model", session=None)
    assert len([r for r in ledger_mod.default_ledger().rows() if r.api == "batch-job"]) == 3  # two reuse rows
    for column in ("calls", "total_tokens", "cost_yuan", "real_time_yuan", "cloud_equivalent_yuan"):
        assert after.loc[MODEL, column] == pytest.approx(first.loc[MODEL, column]), column
    assert after.loc[MODEL, "cache_hits"] == 2 and after.loc[MODEL, "target"] == "cloud"


def test_a_durable_batch_uses_the_default_model_as_do_does(fake: FakeQianfan,  # noqa: F811
                                                          double: FilesBatchesDouble) -> None:
    chat = ChatCompletion(config=key_only_batch_config(fake))
    job = chat.batch_do(["hello"], durable=True)
    (row,) = _uploaded_rows(double)
    assert row["body"]["model"] == chat._default_model() == MODEL  # type: ignore[index]
    assert job.wait(interval=0).status == "Done"


@pytest.mark.parametrize(("option", "value"), [("output_file", "answers.jsonl"), ("worker_num", 8),
                                               ("progress", True), ("retry_budget", 5.0)])
def test_a_live_only_option_of_a_durable_batch_is_refused_by_name(fake: FakeQianfan,  # noqa: F811
                                                                 double: FilesBatchesDouble, option: str,
                                                                 value: object) -> None:
    """``output_file=`` was ignored with durable=True (or a Ray target): the answers never reached it."""
    chat = ChatCompletion(model=MODEL, config=key_only_batch_config(fake))
    with pytest.raises(ValidationError, match=rf"{option}.*not used by a durable batch"):
        chat.batch_do(["hello"], durable=True, **{option: value})
    assert fake.requests == [] and double.files == {}  # nothing sent


def test_a_cloud_batchs_rows_are_calls_and_spans(fake: FakeQianfan, double: FilesBatchesDouble) -> None:  # noqa: F811
    """A cloud batch never reaches the local platform: its rows are counted from its output file, one
    call each in the ledger (its ``requests``) and one span each under the job's in the trace table."""
    from qfnb._core.record.traces import read_spans

    job = BatchJob.submit([f"q {i}" for i in range(4)], model=MODEL, config=key_only_batch_config(fake))
    state = job.wait(interval=0)
    job.record(state)  # read again: once
    (row,) = [r for r in ledger_mod.default_ledger().rows() if r.api == "batch-job"]
    assert row.requests == state.done == 4
    rows = [s for s in read_spans(last=50) if s.route == "cloud batch" and s.operation == "chat"]
    assert len(rows) == 4 and sum(s.input_tokens + s.output_tokens for s in rows) == row.total_tokens

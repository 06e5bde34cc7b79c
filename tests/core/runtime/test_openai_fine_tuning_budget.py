"""Issue 92 §3 through ``qfnb.openai_client()``: the probe's 100-epoch job under
``qfnb.usage.budget(tokens=10)`` was accepted and never reached the ledger. Here the job's forecast is
held at create (refused, uncreated, where the budget cannot fit it), and the job, succeeded or
cancelled, settles the budget to its ``trained_tokens`` and is in the ledger once (the local platform's
app, the fast stand-in training worker)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.record import cache as cache_mod
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import Budget, budget, clear_budget
from qfnb._core.runtime.openai_recorded import SyncRecordedTransport
from tests.fakes.local_platform import ServedPlatform, served_platform

openai = pytest.importorskip("openai")


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "record"))
    cache_mod._default.clear()
    ledger_mod._default.clear()
    clear_budget()
    with served_platform(tmp_path / "data") as platform:
        platform.set_env(monkeypatch)
        yield platform
    clear_budget()


def _sdk(served: ServedPlatform) -> Any:
    transport = SyncRecordedTransport(served.config(embedded=True), watch_first_s=0.05)
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.bearer_token(), max_retries=0, timeout=30,
                         http_client=openai.DefaultHttpxClient(transport=transport))


def _training_file(sdk: Any, rows: int) -> Any:
    data = "".join(json.dumps({"messages": [{"role": "user", "content": f"What is code {i}?"},
                                            {"role": "assistant", "content": f"Code {i} is {i * 7}."}]}) + "\n"
                   for i in range(rows)).encode()
    return sdk.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune")


def _ended(sdk: Any, job_id: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = sdk.fine_tuning.jobs.retrieve(job_id)
        if job.finished_at is not None:
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job.status}"
        time.sleep(0.1)


def _settled(held: Budget, job: Any) -> None:
    """The job's hold settled to its trained tokens, and one ledger row of them."""
    assert isinstance(job.trained_tokens, int)
    rows = [r for r in ledger_mod.default_ledger().rows() if r.api == "fine-tune"]
    assert [(r.job, r.trained_tokens, r.platform) for r in rows] == [(f"fine-tune {job.id}", job.trained_tokens,
                                                                      "local")]
    assert (held.spent_tokens, held.reserved_tokens) == (job.trained_tokens, 0)


def test_a_job_its_budget_cannot_fit_is_refused_uncreated(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    train = _training_file(sdk, 8)
    held = budget(tokens=10)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, hyperparameters={"n_epochs": 100})
    said = refused.value.body["message"]
    assert "fine-tune refused" in said and "0 of 10 used" in said and "(100 epochs)" in said, said
    assert "trained tokens on Tiny-Chat" in said
    assert refused.value.body["code"] == "insufficient_quota"
    assert sdk.fine_tuning.jobs.list().data == []  # nothing was queued
    assert (held.spent_tokens, held.reserved_tokens) == (0, 0)


def test_a_job_that_fits_is_held_and_settled_on_its_trained_tokens(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    train = _training_file(sdk, 8)
    held = budget(tokens=10**6)
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, hyperparameters={"n_epochs": 1})
    assert held.reserved_tokens > 0  # the forecast, held while it trains
    done = _ended(sdk, job.id)
    assert done.status == "succeeded" and done.trained_tokens > 0
    _settled(held, done)
    sdk.fine_tuning.jobs.list()  # read again: counted once
    _settled(held, done)


def test_a_cancelled_job_is_settled_on_what_it_trained(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    train = _training_file(sdk, 40)
    held = budget(tokens=10**7)
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, hyperparameters={"n_epochs": 50})
    deadline = time.monotonic() + 30
    while sdk.fine_tuning.jobs.retrieve(job.id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few steps trained
    assert sdk.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    ended = _ended(sdk, job.id)
    assert ended.status == "cancelled"
    _settled(held, ended)


def test_a_rows_forecast_counts_each_sequence_it_trains() -> None:
    """A chat row: its turns (their words and each turn's template tokens); a DPO pair: the prompt with
    the preferred and with the other answer."""
    from qfnb._core.runtime.openai_fine_tuning import TURN_TOKENS, row_sequences

    chat = {"messages": [{"role": "user", "content": "What is code 1?"}, {"role": "assistant", "content": "Seven."}]}
    assert row_sequences(chat) == [2 * TURN_TOKENS + 4 + 1]
    pair = {"input": {"messages": [{"role": "user", "content": "Greet me"}]},
            "preferred_output": [{"role": "assistant", "content": "Hello there, friend!"}],
            "non_preferred_output": [{"role": "assistant", "content": "No."}]}
    assert row_sequences(pair) == [TURN_TOKENS + 2 + TURN_TOKENS + 3, TURN_TOKENS + 2 + TURN_TOKENS + 1]

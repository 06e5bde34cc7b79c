"""Durable batch jobs and the budget (issue 34 §1): a job reserves its rows' worst case when it is
submitted or is refused naming the budget; its usage settles the reservation when it ends, and
is in the usage ledger once, however many processes read it. An OpenAI batch made through
``qfnb.openai_client()``'s transport takes the same hold and settles the same way (issue 43 §3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer

from qfnb._core.errors import QfnbError
from qfnb._core.http.recording.recorded import worst_case
from qfnb._core.record import cache as cache_mod
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import BudgetExceeded, budget, clear_budget
from qfnb._core.runtime.openai_recorded import SyncRecordedTransport
from qfnb.resources import ChatCompletion, Data
from qfnb.resources.batch_job import BatchJob
from tests.fakes.local_platform import ServedPlatform, served_platform

ROOT = Path(__file__).resolve().parents[2]


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


def _rows(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"m{i}"}] for i in range(n)]


def test_a_durable_job_over_the_budget_is_refused_before_it_runs(served: ServedPlatform) -> None:
    spend = budget(tokens=100)
    with pytest.raises(BudgetExceeded, match="a durable batch of 10 rows may use up to"):
        ChatCompletion(model="tiny-chat").batch_do(_rows(10), durable=True)
    assert BatchJob.list() == [] and (spend.spent_tokens, spend.reserved_tokens) == (0, 0)


def test_a_durable_job_holds_its_worst_case_then_settles_once_across_readers(served: ServedPlatform,
                                                                            tmp_path: Path) -> None:
    spend = budget(tokens=10_000)
    job = ChatCompletion(model="tiny-chat").batch_do(_rows(4), durable=True)
    assert spend.reserved_tokens > 0 and spend.spent_tokens == 0  # held while the job runs
    state = job.wait(interval=0.05)
    used = state.output_tokens + int(state.view.get("inputTokenUsage") or 0)
    assert state.status == "Done" and used > 0
    assert (spend.spent_tokens, spend.reserved_tokens) == (used, 0)
    # another kernel reads the ended job: the ledger keeps one row for it
    script = ("import qfnb; from qfnb.resources.batch_job import BatchJob; "
              f"BatchJob({job.task_id!r}).wait(interval=0.05); "
              "from qfnb._core.record.ledger import default_ledger; default_ledger().flush()")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    job.wait(interval=0.05)
    rows = [r for r in ledger_mod.default_ledger().rows() if r.api == "batch-job"]
    assert len(rows) == 1 and rows[0].total_tokens == used and rows[0].job == f"batch-job {job.task_id}"


def test_a_batch_task_created_directly_under_a_budget_is_refused_naming_it(served: ServedPlatform) -> None:
    budget(tokens=10_000)
    with pytest.raises(BudgetExceeded, match=r"cannot be held to the budget .*BatchJob\.submit"):
        Data.create_offline_batch_inference_task(name="raw", input_bos_uri="bos:/b/in.jsonl",
                                                 output_bos_uri="bos:/b/out/", endpoint="tiny-chat")
    assert BatchJob.list() == []  # nothing was created
    clear_budget()  # without a budget the same call goes through (the platform then checks the file)
    with pytest.raises(QfnbError) as info:
        Data.create_offline_batch_inference_task(name="raw", input_bos_uri="bos:/b/in.jsonl",
                                                 output_bos_uri="bos:/b/out/", endpoint="tiny-chat")
    assert not isinstance(info.value, BudgetExceeded)


def _openai(served: ServedPlatform) -> Any:
    """The openai SDK through qfnb.openai_client()'s transport, on this platform (a minted key)."""
    openai = pytest.importorskip("openai")
    key = httpx.get(served.url + "/v1/BCE-BEARER/token", auth=Signer()).json()["token"]
    transport = SyncRecordedTransport(served.config(embedded=True), watch_first_s=0.05)
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0, timeout=30,
                         http_client=openai.DefaultHttpxClient(transport=transport))


def test_an_openai_batch_holds_its_rows_worst_case_then_settles_once_unread(served: ServedPlatform,
                                                                           tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    client = _openai(served)
    bodies = [{"model": "tiny-chat", "messages": [{"role": "user", "content": f"m{i}"}], "max_tokens": 16}
              for i in range(3)] + [{"model": "tiny-chat", "messages": [{"role": "user", "content": "m3"}]}]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps({"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions",
                                          "body": b}) + "\n" for i, b in enumerate(bodies)))
    upload = client.files.create(file=source.open("rb"), purpose="batch")
    worst = sum(worst_case(b, "v2/chat") for b in bodies)  # the row without a cap: the platform's 1,024
    spend = budget(tokens=worst - 1)
    refused = rf"OpenAI batch of {upload.id} \(4 rows\) may use up to {worst:,}"
    with pytest.raises(openai.RateLimitError, match=refused):
        client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert client.batches.list().data == [] and (spend.spent_tokens, spend.reserved_tokens) == (0, 0)
    spend = budget(tokens=worst + 10_000)
    made = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert spend.reserved_tokens == worst and spend.spent_tokens == 0  # held while it runs
    deadline = time.monotonic() + 60
    while spend.reserved_tokens:  # nobody reads the batch: the transport's watch sees it end
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ended = client.batches.retrieve(made.id)
    assert ended.status == "completed" and ended.usage.total_tokens > 0
    assert (spend.spent_tokens, spend.reserved_tokens) == (ended.usage.total_tokens, 0)
    client.batches.list()
    (row,) = [r for r in ledger_mod.default_ledger().rows() if r.api == "batch-job"]
    assert row.total_tokens == ended.usage.total_tokens and row.job == f"batch-job {made.id}"

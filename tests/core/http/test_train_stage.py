"""Issue 92 §3 through the raw console doors (``FineTune.V2.create_task``, v1 ``FineTune.create_job``)
called outside ``TrainAction``: the ``train`` stage holds a run's forecast before its create is sent (one
the budget cannot fit is refused, unsent, naming the budget and the forecast), and the run, done or
stopped, settles the budget to its trained tokens and is in the ledger once however often it is read.
v2 against the console double (``tests/fakes/console_cloud.py``), v1 against the local platform's app."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import InvalidArgumentError
from qfnb._core.record import ledger as ledger_mod
from qfnb.dataset import Dataset
from qfnb.resources import Data, FineTune
from qfnb.usage import Budget, BudgetExceeded, budget
from tests.fakes.console_cloud import ConsoleCloud
from tests.fakes.console_fixtures import cfg, cloud
from tests.fakes.local_platform import ServedPlatform

__all__ = ["cfg", "cloud"]

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py: own ledger, no budget

#: the console double's run trains this many tokens a poll (it runs ConsoleCloud.train_polls polls)
PER_POLL = 500
DATASETS = {"sourceType": "Platform", "versions": [{"versionId": "ds-1"}], "splitRatio": 20}


def _fine_tunes() -> list[ledger_mod.UsageRow]:
    return [r for r in ledger_mod.default_ledger().rows() if r.api == "fine-tune"]


def _settled(held: Budget, run_id: str, tokens: int, platform: str) -> None:
    assert [(r.job, r.trained_tokens, r.platform) for r in _fine_tunes()] == [(f"fine-tune {run_id}", tokens,
                                                                               platform)]
    assert (held.spent_tokens, held.reserved_tokens) == (tokens, 0)


def _v2_task(cfg: Config, job_id: str, steps: int) -> str:
    created = FineTune.V2.create_task(job_id=job_id, params_scale="LoRA", dataset_config=DATASETS, config=cfg,
                                      hyper_params={"maxSteps": steps, "batchSize": 2, "maxSeqLen": 512})
    return str(created["result"]["taskId"])


def _v2_read_until(cfg: Config, task_id: str, ended: str) -> None:
    for _ in range(50):
        if FineTune.V2.task_detail(task_id=task_id, config=cfg)["result"]["runStatus"] == ended:
            return
    raise AssertionError(f"task {task_id} never read {ended}")


def test_a_v2_task_its_budget_cannot_fit_is_refused_unsent(cloud: ConsoleCloud, cfg: Config) -> None:
    job_id = FineTune.V2.create_job(name="j", model="Fake-Base", config=cfg)["result"]["jobId"]
    held = budget(tokens=5_000)
    with pytest.raises(BudgetExceeded) as refused:
        _v2_task(cfg, job_id, steps=10)
    said = str(refused.value)
    assert "fine-tune refused" in said and "0 of 5,000 used" in said, said
    assert f"the fine-tuning task of job {job_id} (forecast: 10,240 trained tokens" in said, said
    assert cloud.calls("CreateFineTuningTask") == [] and cloud.tasks == {}
    assert (held.spent_tokens, held.reserved_tokens) == (0, 0) and _fine_tunes() == []


def test_a_v2_task_is_held_then_in_the_ledger_once_however_often_it_is_read(cloud: ConsoleCloud,
                                                                           cfg: Config) -> None:
    cloud.trained_per_poll = PER_POLL
    job_id = FineTune.V2.create_job(name="j", model="Fake-Base", config=cfg)["result"]["jobId"]
    held = budget(tokens=20_000)
    task_id = _v2_task(cfg, job_id, steps=10)
    assert held.reserved_tokens == 10 * 2 * 512  # the worst case, held while it trains
    assert FineTune.V2.task_detail(task_id=task_id, config=cfg)["result"]["runStatus"] == "Running"
    assert _fine_tunes() == [] and held.reserved_tokens == 10_240  # not ended: nothing settled
    _v2_read_until(cfg, task_id, "Done")
    for _ in range(3):  # read again, and listed: counted once
        FineTune.V2.task_detail(task_id=task_id, config=cfg)
        FineTune.V2.task_list(job_id=job_id, config=cfg)
    _settled(held, task_id, cloud.train_polls * PER_POLL, "cloud")


def test_a_stopped_v2_task_is_in_the_ledger_once_on_what_it_trained(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.trained_per_poll = PER_POLL
    cloud.train_polls = 1000
    job_id = FineTune.V2.create_job(name="j", model="Fake-Base", config=cfg)["result"]["jobId"]
    held = budget(tokens=20_000)
    task_id = _v2_task(cfg, job_id, steps=10)
    for _ in range(2):
        FineTune.V2.task_detail(task_id=task_id, config=cfg)
    FineTune.V2.stop_task(task_id=task_id, config=cfg)
    _v2_read_until(cfg, task_id, "Stopped")
    FineTune.V2.task_detail(task_id=task_id, config=cfg)
    _settled(held, task_id, 2 * PER_POLL, "cloud")


def test_a_v2_task_made_without_a_budget_is_in_the_ledger_when_read_ended(cloud: ConsoleCloud,
                                                                         cfg: Config) -> None:
    cloud.trained_per_poll = PER_POLL
    job_id = FineTune.V2.create_job(name="j", model="Fake-Base", config=cfg)["result"]["jobId"]
    task_id = _v2_task(cfg, job_id, steps=10)
    _v2_read_until(cfg, task_id, "Done")
    FineTune.V2.task_detail(task_id=task_id, config=cfg)
    assert [(r.job, r.trained_tokens) for r in _fine_tunes()] == [(f"fine-tune {task_id}",
                                                                   cloud.train_polls * PER_POLL)]


def test_a_dataset_the_platform_cannot_describe_holds_nothing_and_the_create_goes_on(
        cloud: ConsoleCloud, cfg: Config, caplog: pytest.LogCaptureFixture) -> None:
    """No ``maxSteps``: the rows are read first; the console double has no ``DescribeDatasetVersion``, so the
    forecast is 0 (logged), the task is created and settles when it ends."""
    cloud.trained_per_poll = PER_POLL
    job_id = FineTune.V2.create_job(name="j", model="Fake-Base", config=cfg)["result"]["jobId"]
    held = budget(tokens=20_000)
    with caplog.at_level("INFO", logger="qfnb.usage"):
        task_id = str(FineTune.V2.create_task(job_id=job_id, params_scale="LoRA", dataset_config=DATASETS,
                                              hyper_params={"epoch": 3}, config=cfg)["result"]["taskId"])
    assert "dataset ds-1's rows could not be read" in caplog.text
    assert held.reserved_tokens == 0 and len(cloud.calls("CreateFineTuningTask")) == 1
    _v2_read_until(cfg, task_id, "Done")
    _settled(held, task_id, cloud.train_polls * PER_POLL, "cloud")


# ---------------------------------------------------------------------------- v1, the local platform


@pytest.fixture
def local(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    return local_platform.config()


def _v1_job(local: Config, dataset_id: Any, steps: int | None, epoch: int = 1) -> Callable[[], dict[str, Any]]:
    """A v1 task and a run (job) in it; what reads the run's detail."""
    task_id = FineTune.create_task(name="t", base_train_type="Tiny-Chat", train_type="Tiny-Chat",
                                   config=local)["result"]["id"]
    job = FineTune.create_job({
        "taskId": task_id, "baseTrainType": "Tiny-Chat", "trainType": "Tiny-Chat", "trainMode": "SFT",
        "peftType": "LoRA", "trainConfig": {"epoch": epoch, "learningRate": 0.001, "batchSize": 2, "maxSeqLen": 128,
                                            **({"maxSteps": steps} if steps else {})},
        "trainset": [{"type": 1, "id": dataset_id}], "trainsetRate": 20}, config=local)
    job_id = job["result"]["id"]
    return lambda: dict(FineTune.get_job(task_id, job_id, config=local)["result"])


def _v1_ended(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (detail := read())["trainStatus"] not in ("FINISH", "FAIL", "STOP"):
        assert time.monotonic() < deadline, detail["trainStatus"]
        time.sleep(0.05)
    return detail


def _dataset(local: Config) -> Any:
    rows = Dataset.create_from_pyobj([{"prompt": f"{i}+{i}?", "response": str(2 * i)} for i in range(8)])
    return rows.save(qianfan_dataset_create_args={"name": "budget_v1"}, config=local).qianfan_dataset_id


def test_v1_runs_are_refused_past_the_budget_and_settled_once_done_or_stopped(local: Config) -> None:
    dataset_id = _dataset(local)
    held = budget(tokens=500)
    with pytest.raises(BudgetExceeded) as refused:
        _v1_job(local, dataset_id, steps=3)  # 3 x 2 x 128 = 768 > 500
    said = str(refused.value)
    assert "0 of 500 used" in said and "(forecast: 768 trained tokens on Tiny-Chat)" in said, said
    assert held.reserved_tokens == 0 and _fine_tunes() == []

    held = budget(tokens=10**8)  # the stopped run's worst case, 20,000 steps, is held too
    read = _v1_job(local, dataset_id, steps=3)
    assert held.reserved_tokens == 768
    done = _v1_ended(read)
    assert done["trainStatus"] == "FINISH"
    read()  # read again: counted once
    trained = int(done["metrics"]["trained_tokens"])
    assert 0 < trained <= 768
    _settled(held, str(done["id"]), trained, "cloud")

    with pytest.raises(InvalidArgumentError, match="maxSteps"):  # the platform refuses it: the hold goes back
        _v1_job(local, dataset_id, steps=100_000)
    assert held.reserved_tokens == 0

    stopped = _v1_job(local, dataset_id, steps=20_000)
    first = stopped()
    FineTune.stop_job(first["taskId"], first["id"], config=local)
    ended = _v1_ended(stopped)
    assert ended["trainStatus"] == "STOP"
    stopped()
    rows = _fine_tunes()
    assert [r.job for r in rows] == [f"fine-tune {done['id']}", f"fine-tune {ended['id']}"]
    assert rows[1].trained_tokens == int(ended["metrics"].get("trained_tokens") or 0)
    assert (held.spent_tokens, held.reserved_tokens) == (trained + rows[1].trained_tokens, 0)


def test_a_run_without_max_steps_holds_its_datasets_rows_x_epochs_x_sequence_length(local: Config) -> None:
    """v1 and v2 on the local platform: the create first reads its dataset's rows (8) from the platform;
    8 x 3 epochs x 128 = 3,072 is refused by a 3,000-token budget, unsent; the v2 task that fits is held
    so, and settles to what it trained."""
    dataset_id = _dataset(local)
    held = budget(tokens=3_000)
    with pytest.raises(BudgetExceeded, match=r"forecast: 3,072 trained tokens on Tiny-Chat"):
        _v1_job(local, dataset_id, steps=None, epoch=3)

    version = Data.get_dataset_info(dataset_id, config=local)
    version_id = version["result"]["versionInfo"]["bmlDatasetId"]
    job_id = FineTune.V2.create_job(name="j", model="Tiny-Chat", config=local)["result"]["jobId"]

    def create() -> str:
        return str(FineTune.V2.create_task(
            job_id=job_id, params_scale="LoRA", config=local,
            hyper_params={"epoch": 3, "learningRate": 0.001, "batchSize": 2, "maxSeqLen": 128},
            dataset_config={"sourceType": "Platform", "versions": [{"versionId": version_id}],
                            "splitRatio": 20})["result"]["taskId"])

    with pytest.raises(BudgetExceeded, match=rf"task of job {job_id} \(forecast: 3,072 trained tokens"):
        create()
    assert FineTune.V2.task_list(job_id=job_id, config=local)["result"]["taskList"] == []
    held = budget(tokens=10_000)
    task_id = create()
    assert held.reserved_tokens == 3_072
    deadline = time.monotonic() + 60
    while (detail := FineTune.V2.task_detail(task_id=task_id, config=local)["result"])["runStatus"] != "Done":
        assert detail["runStatus"] in ("Waiting", "Running") and time.monotonic() < deadline
        time.sleep(0.05)
    trained = int(detail["metrics"]["trained_tokens"])
    assert 0 < trained <= 3_072
    _settled(held, task_id, trained, "cloud")

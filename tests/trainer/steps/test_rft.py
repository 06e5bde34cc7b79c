"""Reinforcement fine-tuning (RFT) through the official trainer on the local platform's real routes:
the reward runs in this process (``reward=fn``), never in the platform; its errors stop the run and
are raised here; a declarative grader is scored by the platform; a run re-attached after its process
went away goes on taking rewards. The training worker is the platform's fast stand-in
(``tests/local/fake_worker.py``), which exchanges rewards through the real
:class:`~qfnb.local.training.rewards.RewardExchange`."""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb.dataset import Dataset
from qfnb.dataset.schema import TrainModeData
from qfnb.resources import FineTune
from qfnb.trainer import LLMFinetune, TrainConfig
from qfnb.trainer.steps.rewards import RewardFunctionError
from tests.fakes.events import RecordingHandler
from tests.fakes.local_platform import ServedPlatform

PROMPTS = [{"prompt": f"Name a colour ({i})", "colour": "blue"} for i in range(6)]
PAIRS = [{"prompt": f"Name a colour ({i})", "response": "blue"} for i in range(6)]


@pytest.fixture
def local(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    return local_platform.config()


def _trainer(local: Config, reward: Any, steps: int = 3, **kw: Any) -> LLMFinetune:
    return LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(PROMPTS), train_mode="RFT",
                       reward=reward, model_not_publish=True, config=local,
                       train_config=TrainConfig(max_steps=steps, batch_size=2, group_size=2, trainset_rate=0), **kw)


def _detail(trainer: LLMFinetune, local: Config) -> dict[str, Any]:
    return dict(FineTune.V2.task_detail(task_id=trainer.train_action.task_id, config=local).body["result"])


def test_the_reward_function_scores_every_sample_in_this_process(local: Config) -> None:
    calls: list[tuple[str, str, dict[str, Any], int]] = []

    def count_hash(prompt: str, completion: str, **kw: Any) -> float:
        calls.append((prompt, completion, kw, os.getpid()))
        return float(completion.endswith("#1"))

    steps = RecordingHandler()
    trainer = _trainer(local, count_hash, event_handler=steps).run()
    assert len(calls) == 3 * 2 * 2  # steps x prompts x group
    assert {pid for *_, pid in calls} == {os.getpid()}  # the user's process, not the platform's worker
    prompt, completion, kw, _ = calls[0]
    assert prompt.startswith("Name a colour") and completion.startswith(prompt) and kw == {"colour": "blue"}
    detail = _detail(trainer, local)
    assert detail["runStatus"] == "Done" and detail["rewardSource"] == "client"
    assert [v for _, v in detail["rewardCurve"]] == [0.5, 0.5, 0.5]  # one of each group's two ends with #1
    assert [s for s, _ in detail["rewardMeanCurve"]] == [1, 2, 3]
    assert trainer.output["metrics"]["rewards"] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(("returned", "said"), [
    (float("nan"), "returned nan .*a reward must be a finite number"),
    (None, "returned None .*a reward must be a number"),
    ("0.5", "returned '0.5' .*a reward must be a number"),
])
def test_a_reward_that_is_not_a_number_stops_the_run_and_is_raised_here(local: Config, returned: Any,
                                                                         said: str) -> None:
    steps = RecordingHandler()
    trainer = _trainer(local, lambda prompt, completion, **kw: returned, event_handler=steps)
    with pytest.raises(RewardFunctionError, match=said):
        trainer.run()
    assert trainer.status == "TrainFailed"
    detail = _detail(trainer, local)  # the platform's task says why, as the dashboard shows it
    assert detail["runStatus"] == "Failed" and "RewardError: the reward function" in detail["errorMessage"]
    assert any("reward failed" in e.description for e in steps.events)


def test_a_reward_that_raises_stops_the_run_with_its_error(local: Config) -> None:
    def broken(prompt: str, completion: str, **kw: Any) -> float:
        raise KeyError("keyword")

    trainer = _trainer(local, broken)
    with pytest.raises(RewardFunctionError, match=r"raised KeyError: 'keyword' \(prompt 'Name a colour") as info:
        trainer.run()
    assert isinstance(info.value.__cause__, KeyError)
    assert "raised KeyError" in _detail(trainer, local)["errorMessage"]


def test_a_declarative_grader_is_scored_by_the_platform(local: Config) -> None:
    grader = {"type": "string_check", "name": "ends with #0", "input": "{{sample.output_text}}",
              "reference": "#0", "operation": "like"}
    trainer = _trainer(local, grader).run()
    detail = _detail(trainer, local)
    assert detail["rewardSource"] == "the string_check grader 'ends with #0'"
    assert [v for _, v in detail["rewardCurve"]] == [0.5, 0.5, 0.5]


def test_reward_is_checked_before_anything_is_sent(local: Config) -> None:
    with pytest.raises(ValidationError, match=r"reward.*train_mode='RFT' needs reward="):
        _trainer(local, None)
    with pytest.raises(ValidationError, match=r"reward.*must accept \(prompt, completion, \*\*kw\)"):
        _trainer(local, lambda text: 1.0)
    with pytest.raises(ValidationError, match=r"reward.*is for train_mode='RFT'"):
        LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(PAIRS), reward=len, config=local)
    with pytest.raises(ValidationError, match=r"evaluation_metric"):
        _trainer(local, {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "x",
                         "evaluation_metric": "cosine"})
    assert _trainer(local, "operator:contains").train_action.reward is operator.contains  # module:function


def test_a_run_whose_reward_client_is_gone_stops_with_a_clear_error(local: Config) -> None:
    task = _create(local, "rft_gone", "RFT", reward={"source": "client", "clientWaitSeconds": 1})
    deadline = time.time() + 30
    while (detail := FineTune.V2.task_detail(task_id=task, config=local).body["result"])["runStatus"] in (
            "Waiting", "Running") and time.time() < deadline:
        time.sleep(0.1)
    assert detail["runStatus"] == "Failed"
    assert "no reward client fetched the samples of this step within 1 s" in detail["errorMessage"]


_FIRST_KERNEL = """
import os, sys
from qfnb.dataset import Dataset
from qfnb.dataset.schema import TrainModeData
from qfnb.trainer import LLMFinetune, TrainConfig

def first(prompt, completion, **kw):
    print(trainer.id, flush=True)
    os._exit(0)  # the kernel restarts: no stop, no goodbye

rows = [{"prompt": f"Name a colour ({i})", "colour": "blue"} for i in range(6)]
trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(rows), train_mode="RFT",
                      reward=first, model_not_publish=True,
                      train_config=TrainConfig(max_steps=4, batch_size=2, group_size=2, trainset_rate=0))
trainer.run()
"""


def test_a_reattached_trainer_goes_on_providing_the_rewards(local_platform: ServedPlatform, local: Config,
                                                            tmp_path: Path) -> None:
    """The kernel that started the run dies while the run waits for its first rewards; the trainer
    loaded from its record with the function again re-attaches, and the run finishes."""
    env = {**os.environ, **local_platform.env(), "QIANFAN_CACHE_DIR": os.environ["QIANFAN_CACHE_DIR"]}
    first = subprocess.run([sys.executable, "-c", _FIRST_KERNEL], env=env, capture_output=True, text=True,
                           timeout=60, check=True)
    trainer_id = first.stdout.split()[0]
    with pytest.raises(ValidationError, match=r"pass it again, load\(id, reward=fn\)"):
        LLMFinetune.load(trainer_id, config=local)
    calls: list[str] = []
    again = LLMFinetune.load(trainer_id, config=local, reward=lambda p, c, **kw: calls.append(c) or 1.0)
    assert again.train_action.task_id is not None  # the run the first kernel started
    again.resume()
    detail = _detail(again, local)
    assert detail["runStatus"] == "Done" and len(calls) == 4 * 2 * 2  # every step's rewards came from here
    assert [v for _, v in detail["rewardCurve"]] == [1.0] * 4


def _create(local: Config, name: str, mode: str, **task: Any) -> str:
    job = FineTune.V2.create_job(name=name, model="Tiny-Chat", train_mode=mode, config=local)
    ds = Dataset.create_from_pyobj(PROMPTS if mode == "RFT" else PAIRS).save(
        qianfan_dataset_create_args={"name": name}, config=local, schema=TrainModeData(mode) if mode == "RFT" else None)
    return str(FineTune.V2.create_task(
        job_id=job.body["result"]["jobId"], params_scale="LoRA", hyper_params={"maxSteps": 2, "batchSize": 2},
        dataset_config={"sourceType": "Platform", "versions": [{"versionId": ds.id}], "splitRatio": 0},
        config=local, **task).body["result"]["taskId"])


def _exchange(local: Config, action: str, body: dict[str, Any]) -> dict[str, Any]:
    from qfnb.resources.console.sending.sender import ConsoleRequest, send

    return dict(send(ConsoleRequest("/v2/finetuning", body, action), config=local).body["result"])


def test_the_reward_routes_check_what_the_client_posts(local: Config) -> None:
    from qfnb._core.errors import QfnbError
    from qfnb.protocol.console.rewards import FETCH_ACTION, SUBMIT_ACTION

    task = _create(local, "rft_routes", "RFT", reward={"source": "client", "clientWaitSeconds": 30})
    found = _exchange(local, FETCH_ACTION, {"taskId": task, "waitSeconds": 10})
    (request,) = found["requests"]
    assert found["runStatus"] == "Running" and len(request["samples"]) == 2 * 4  # batch x the default group
    with pytest.raises(QfnbError, match=r"rewards.*must be a list of 8 numbers"):
        _exchange(local, SUBMIT_ACTION, {"taskId": task, "requestId": request["requestId"], "rewards": [1.0]})
    with pytest.raises(QfnbError, match=r"rewards\[2\].*must be a number"):
        _exchange(local, SUBMIT_ACTION, {"taskId": task, "requestId": request["requestId"],
                                         "rewards": [1.0, 0.0, "high", 0, 0, 0, 0, 0]})
    with pytest.raises(QfnbError, match=r"waitSeconds.*must be a number of seconds in \[0, 20\]"):
        _exchange(local, FETCH_ACTION, {"taskId": task, "waitSeconds": 600})
    ok = _exchange(local, SUBMIT_ACTION, {"taskId": task, "requestId": request["requestId"], "rewards": [0.5] * 8})
    assert ok["accepted"] is True
    with pytest.raises(QfnbError, match=r"(answered already|no pending reward request)"):
        _exchange(local, SUBMIT_ACTION, {"taskId": task, "requestId": request["requestId"], "rewards": [0.5] * 8})
    FineTune.V2.stop_task(task_id=task, config=local)
    sft = _create(local, "sft_routes", "SFT")
    with pytest.raises(QfnbError, match=r"takes no client rewards \(it is a SFT run\)"):
        _exchange(local, FETCH_ACTION, {"taskId": sft})


def test_a_rft_task_is_refused_a_malformed_reward_before_it_is_queued(local: Config) -> None:
    from qfnb._core.errors import QfnbError

    with pytest.raises(QfnbError, match=r"reward.type.*string_check, text_similarity"):
        _create(local, "rft_bad", "RFT", reward={"type": "python", "source_code": "def grade(...)"})

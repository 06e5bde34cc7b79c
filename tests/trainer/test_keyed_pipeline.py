"""The official-style pipeline on the local platform (``Dataset`` saved, ``LLMFinetune`` trained, its
``Model`` published and deployed as a ``Service``) sends each of its creates under an ``Idempotency-Key`` of
its own: a retry of any of them (a dropped connection, a daemon that died under it) creates it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb.dataset import Dataset
from qfnb.protocol.wires.qianfan.routes import Console
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(8)]


def test_each_create_of_the_pipeline_is_sent_under_a_key_of_its_own(local_platform: ServedPlatform, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     keyed_calls: list[tuple[str, str]]) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    keyed = keyed_calls
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=2, learning_rate=1e-3, max_steps=2),
                          deploy_config=DeployConfig(endpoint_suffix="keyed_e2e"), config=local_platform.config())
    trainer.run()
    assert trainer.status == "Deployed"
    assert [route for route, _ in keyed] == [
        Console.DATASET_CREATE, f"{Console.V2_FINETUNING}?Action=CreateFineTuningJob",
        f"{Console.V2_FINETUNING}?Action=CreateFineTuningTask", Console.MODEL_PUBLISH,
        f"{Console.V2_SERVICE}?Action=CreateService"]
    keys = [key for _, key in keyed]
    assert all(key.startswith("qfnb-") for key in keys) and len(set(keys)) == len(keys)

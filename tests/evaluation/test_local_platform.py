"""Platform evaluation end to end against the local platform's app (engine doubles from
tests/local): Dataset.save → QianfanRuleEvaluator → eval/create, detail polling, report."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.errors import APIError
from qfnb.evaluation import EvaluationManager, QianfanRefereeEvaluator, QianfanRuleEvaluator
from qfnb.model import Model
from qfnb.protocol import ProtocolError
from tests.fakes.local_platform import ServedPlatform


@pytest.fixture
def local(local_platform: ServedPlatform) -> tuple[Any, Config]:
    return local_platform.app, local_platform.config()


def test_rule_evaluation_on_the_local_platform(local: tuple[Any, Config]) -> None:
    app, cfg = local
    rows = [{"prompt": "x", "response": [["Tiny-Chat: x"]]}, {"prompt": "y", "response": [["something else"]]}]
    ds = Dataset.create_from_pyobj(rows).save(qianfan_dataset_create_args={"name": "eval-set"}, config=cfg)
    store = app.state.platform.store
    preset = next(m for m in store.all("models") if m.get("presetOf") == "Tiny-Chat")
    version = store.all("versions", lambda v: v["modelId"] == preset["id"])[0]
    model = Model(version_id=version["id"], config=cfg)  # modelId looked up from the version

    em = EvaluationManager(qianfan_evaluators=[QianfanRuleEvaluator(using_accuracy=True, using_similarity=True)])
    result = em.eval([model], ds, config=cfg)

    assert result.state == "Done" and em.task_id
    assert model.set_id == preset["id"]
    tag = "Tiny-Chat_1"
    metrics = result.metrics[tag]
    assert metrics["accuracy"] == 0.5  # the double answers "tiny-chat: x" -> matches row 1 only
    assert 0.0 < metrics["similarity"] <= 1.0
    assert list(result.metrics_df.index) == [tag]
    samples = result.samples_df  # the local platform's report carries per-sample predictions
    assert samples["reference"].tolist() == ["Tiny-Chat: x", "something else"]
    assert samples[f"{tag}/output"].str.lower().tolist()[0] == "tiny-chat: x"


def test_seed_000_dataset_by_platform_id(local: tuple[Any, Config]) -> None:
    """Seed 000 offline: ``Dataset.load(qianfan_dataset_id=...)`` (an export, downloaded), then
    ``Model.batch_inference`` and a platform rule evaluation on that dataset."""
    app, cfg = local
    rows = [{"prompt": "x", "response": [["Tiny-Chat: x"]]}, {"prompt": "y", "response": [["something else"]]}]
    saved = Dataset.create_from_pyobj(rows).save(qianfan_dataset_create_args={"name": "seed-000"}, config=cfg)
    ds = Dataset.load(qianfan_dataset_id=saved.qianfan_dataset_id, config=cfg)
    assert "not loaded" in repr(ds)
    assert ds.list() == rows  # exported by the platform and read back
    store = app.state.platform.store
    preset = next(m for m in store.all("models") if m.get("presetOf") == "Tiny-Chat")
    model = Model(version_id=store.all("versions", lambda v: v["modelId"] == preset["id"])[0]["id"], config=cfg)
    inferred = model.batch_inference(dataset=ds)
    assert [str(o).lower() for o in inferred.to_pandas()["llm_output"]] == ["tiny-chat: x", "tiny-chat: y"]
    em = EvaluationManager(qianfan_evaluators=[QianfanRuleEvaluator(using_accuracy=True)])
    assert em.eval([model], ds, config=cfg).metrics["Tiny-Chat_1"]["accuracy"] == 0.5


def test_batch_inference_of_an_undeployed_version_runs_on_the_platform(local: tuple[Any, Config]) -> None:
    """A tuned version with no service: ``batch_inference`` runs as a platform batch-inference
    task (``/v2/batchinference``), on a platform dataset or a local one."""
    app, cfg = local
    rows = [{"prompt": "x", "response": [["ref x"]]}, {"prompt": "y", "response": [["ref y"]]}]
    ds = Dataset.create_from_pyobj(rows).save(qianfan_dataset_create_args={"name": "batch-run"}, config=cfg)
    store = app.state.platform.store
    tuned = store.insert("models", {"modelName": "my-tuned", "source": "Train", "modelType": 0})
    version = store.insert("versions", {"modelId": tuned["id"], "version": "1", "baseModel": "Tiny-Chat",
                                        "adapterDir": None, "state": "Ready", "sourceType": "Train"})
    model = Model(version_id=version["id"], config=cfg)
    out = model.batch_inference(dataset=Dataset.load(qianfan_dataset_id=ds.qianfan_dataset_id, config=cfg))
    df = out.to_pandas()
    assert df["prompt"].tolist() == ["x", "y"] and df["response"].tolist() == [[["ref x"]], [["ref y"]]]
    assert df["llm_output"].str.lower().tolist() == ["tiny-chat: x", "tiny-chat: y"]
    task = store.all("batches")[-1]
    assert task["runStatus"] == "Done" and task["model"] == "Tiny-Chat" and task["done"] == 2
    assert store.all("evaluations") == []  # no evaluation borrowed any more
    local_rows = model.batch_inference(dataset=Dataset.create_from_pyobj(rows)).to_pandas()
    assert local_rows["llm_output"].str.lower().tolist() == ["tiny-chat: x", "tiny-chat: y"]
    assert len(store.all("batches")) == 2


def test_local_platform_rejects_referee_mode_with_its_message(local: tuple[Any, Config]) -> None:
    _app, cfg = local
    ds = Dataset.create_from_pyobj([{"prompt": "x", "response": [["y"]]}]).save(
        qianfan_dataset_create_args={"name": "eval-set"}, config=cfg)
    em = EvaluationManager(qianfan_evaluators=[QianfanRefereeEvaluator(app_id=1)])
    with pytest.raises(APIError, match="rule evaluation only"):
        em.eval([{"modelId": 1, "modelVersionId": 1}], ds, config=cfg)
    with pytest.raises(ProtocolError, match="stored on the platform"):
        em.eval([{"modelId": 1, "modelVersionId": 1}], Dataset.create_from_pyobj([{"prompt": "x"}]), config=cfg)

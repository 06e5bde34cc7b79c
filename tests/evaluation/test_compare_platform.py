"""The comparison on the official evaluators' results, and recorded answers from a batch run, on the
local platform's app (engine doubles: Tiny-Chat answers ``"tiny-chat: <prompt>"``)."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator, QianfanRuleEvaluator
from qfnb.model import Model
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": p, "response": [[f"Tiny-Chat: {p}"]]} for p in ("x", "y", "z", "w", "v", "u")]


@pytest.fixture
def local(local_platform: ServedPlatform) -> tuple[Any, Config]:
    return local_platform.app, local_platform.config()


def calls(local_platform: ServedPlatform) -> int:
    return sum(len(engine.calls) for engine in local_platform.registry.engines.values())


def _preset(app: Any, cfg: Config, name: str) -> Model:
    store = app.state.platform.store
    preset = next(m for m in store.all("models") if m.get("presetOf") == name)
    return Model(version_id=store.all("versions", lambda v: v["modelId"] == preset["id"])[0]["id"], config=cfg)


def test_rule_evaluation_results_compare_item_by_item(local: tuple[Any, Config]) -> None:
    app, cfg = local
    ds = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "cmp"}, config=cfg)
    em = EvaluationManager(qianfan_evaluators=[QianfanRuleEvaluator(using_accuracy=True)])
    result = em.eval([_preset(app, cfg, "Tiny-Chat"), _preset(app, cfg, "Other-Chat")], ds, config=cfg)
    tags = result.llm_tags
    assert len(tags) == 2 and result.metrics[tags[0]]["accuracy"] == 1.0
    cmp = result.compare(tags[0], tags[1])  # outputs only: scored per item as the platform scored them
    row = cmp.row(tags[0], "accuracy")
    assert (row.wins, row.ties, row.losses, row.n) == (6, 0, 0, 6) and row.test == "McNemar exact"
    assert row.mean_model == result.metrics[tags[0]]["accuracy"]
    assert row.mean_baseline == result.metrics[tags[1]]["accuracy"]
    assert cmp.row(tags[0], "rouge_l").verdict in ("better", "identical", "inconclusive")


def test_batch_run_output_is_scored_as_recorded_answers(local_platform: ServedPlatform) -> None:
    app, cfg = local_platform.app, local_platform.config()
    ds = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "rec"}, config=cfg)
    answers = _preset(app, cfg, "Tiny-Chat").batch_inference(dataset=ds)
    before = calls(local_platform)
    assert before == len(ROWS)
    res = EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval(dataset=ROWS, recorded={"tiny": answers})
    assert res.metrics["tiny"]["accuracy"] == 1.0
    assert calls(local_platform) == before  # scored without calling any model

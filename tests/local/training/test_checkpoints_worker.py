"""The training worker's checkpoints on a tiny random Gemma 3: K adapters saved evenly, each scored on
the held-out split in the worker (its cost reported), the best one and early stopping (Contract 4)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tiny_gemma

from qfnb.local.training import evaluate
from qfnb.local.training.process import worker

# find_spec, not importorskip: importing peft at collection costs seconds in every worker
pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

TRAIN = [{"prompt": f"What is code {i}?", "response": f"Code {i} is {chr(65 + i) * 3}."} for i in range(16)]
HELD = [{"prompt": f"What is code {i}?", "response": f"Code {i} is {chr(97 + i) * 3}."} for i in range(4)]


def _job(tmp_path: Path, **hyper: Any) -> Path:
    model_dir = build_tiny_gemma(tmp_path / "model")
    job = tmp_path / "job"
    job.mkdir()
    for name, rows in (("train", TRAIN), ("eval", HELD)):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "seed": 3,
        "hyper": {"learningRate": 0.03, "batchSize": 4, "maxSeqLen": 64, **hyper}}))
    return job


def _checkpoints(job: Path) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    return [p["checkpoint"] for p in lines if "checkpoint" in p]


def test_k_checkpoints_are_saved_evenly_and_scored_on_the_held_out_split(tmp_path: Path) -> None:
    job = _job(tmp_path, maxSteps=6, checkpoints=3, evalMetric="rouge_l", evalMetricItems=1)
    result = worker.run(job)
    assert result["status"] == "Done", result
    saved = _checkpoints(job)
    assert [c["step"] for c in saved] == [2, 4, 6]
    for c in saved:
        assert math.isfinite(c["evalLoss"]) and c["trainLoss"] > 0 and 0 <= c["metric"] <= 1
        assert c["metricName"] == "rouge_l" and (Path(c["path"]) / "adapter_model.safetensors").is_file()
    m = result["metrics"]
    best = max(saved, key=lambda c: (c["metric"], -c["step"]))  # a named metric decides
    assert m["best_checkpoint"] == best["step"] and m["checkpoints"] == 3 and m["metric_items"] == 1
    assert m["scoring_seconds"] > 0 and m["scoring_share"] == pytest.approx(m["scoring_seconds"] / m["train_seconds"],
                                                                              rel=0.01)
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    assert [p["step"] for p in lines if "eval_loss" in p] == [2, 4, 6]  # measured at the checkpoints only


def test_early_stop_ends_the_run_after_patience_checkpoints_without_improvement(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held_losses = iter([3.0, 2.0, 2.5, 2.8, 3.1])  # the held-out loss rises after the second checkpoint
    monkeypatch.setattr(evaluate.EvalSet, "loss", lambda self, model, **kw: next(held_losses))
    job = _job(tmp_path, maxSteps=5, checkpoints=5, earlyStop=True, earlyStopPatience=2)
    result = worker.run(job)
    assert result["status"] == "Done"
    assert [c["step"] for c in _checkpoints(job)] == [1, 2, 3, 4]  # stopped at step 4 of 5
    m = result["metrics"]
    assert m["early_stopped_at"] == 4 and m["steps"] == 4 and m["best_checkpoint"] == 2
    assert m["overfitting"] == "over-fitting since step 2: held-out loss 2 → 2.8"


def test_held_out_rows_are_capped_to_the_scoring_budget() -> None:
    assert evaluate.budget_rows(40, 4, 5) == 14  # 0.15 * 40 steps * 4 rows * 3 / 5 points
    assert evaluate.budget_rows(4, 1, 5) == evaluate.MIN_EXAMPLES
    assert evaluate.budget_rows(10_000, 8, 5) == evaluate.MAX_EXAMPLES


def test_the_schedule_says_whether_max_steps_or_epochs_decide() -> None:
    from qfnb.local.training.spec import Hyper

    assert Hyper(epoch=1, batch_size=4, max_steps=40).schedule(16) == (
        "40 steps: maxSteps wins over epoch=1 (10 passes over 16 examples)")
    assert Hyper(epoch=2, batch_size=4).schedule(16) == "8 steps: epoch=2 of 4 steps"

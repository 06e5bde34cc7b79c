"""A short LoRA fine-tune of a tiny random Gemma 3 as a Ray Train job on a real one-node head this
module starts (``tests/batch/ray_head.py``), with one Ray Train worker and with two (data-parallel):
the local platform's follower submits it, mirrors its progress, and the best checkpoint's adapter
and the final one come back into the job dir, scored on the held-out split; Ray lists the job
SUCCEEDED. A minute or more on 2 busy cores, so ``slow``; ``test_ray_follow.py`` covers the same
follower against a fake Jobs API by default."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from tiny_models import build_tiny_gemma

from qfnb.local.cluster import ray_follow
from qfnb.protocol.console import checkpoints as ckpt

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "batch"))
from ray_head import ray_head  # the batch tests' one-node head

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed"),
              pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="ray[train] not installed")]

TRAIN = [{"prompt": f"What is code {i}?", "response": f"Code {i} is {chr(65 + i) * 3}."} for i in range(8)]
HELD = [{"prompt": f"What is code {i}?", "response": f"Code {i} is {chr(97 + i) * 3}."} for i in range(4)]


def test_a_four_step_finetune_runs_as_a_ray_train_job_and_its_best_checkpoint_comes_back(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from ray.job_submission import JobSubmissionClient

    work = tmp_path_factory.mktemp("rt")
    model_dir = build_tiny_gemma(work / "model")
    job = work / "jobs" / "task-ray"
    job.mkdir(parents=True)
    for name, rows in (("train", TRAIN), ("eval", HELD)):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    with ray_head(tmp_path_factory.mktemp("ray"), cpus=2) as target:
        (job / "spec.json").write_text(json.dumps({
            "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": str(job / "train.jsonl"),
            "eval_file": str(job / "eval.jsonl"), "seed": 3, "target": target,
            "hyper": {"learningRate": 0.03, "batchSize": 2, "maxSeqLen": 64, "maxSteps": 4, "checkpoints": 2}}))
        result = ray_follow.run(job)
        info = JobSubmissionClient(target.replace("ray://", "http://")).get_job_info(ray_follow.submission_id(job))
    assert result["status"] == "Done", result
    assert str(getattr(info.status, "value", info.status)) == "SUCCEEDED"
    points = [json.loads(line) for line in (job / "progress.jsonl").read_text().splitlines()]
    assert [p["step"] for p in points if "loss" in p] == [1, 2, 3, 4]
    saved = [p["checkpoint"] for p in points if "checkpoint" in p]
    assert [c["step"] for c in saved] == [2, 4] and all(math.isfinite(c["evalLoss"]) for c in saved)
    best = ckpt.best_checkpoint(saved)
    assert best is not None and result["metrics"]["best_checkpoint"] == best["step"]
    assert (Path(best["path"]) / "adapter_model.safetensors").is_file()  # the best came back
    assert (Path(result["adapter_dir"]) / "adapter_config.json").is_file()  # and the final adapter
    assert result["ray_storage"] and result["metrics"]["ray_job"] == "qfnb-train-task-ray"


def test_two_ray_train_workers_train_one_run_data_parallel(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``ray_workers`` 2: two Ray Train workers in one gloo process group, each on half the rows (4 of
    8), the gradients averaged; rank 0's checkpoints are scored and the best one comes back."""
    from ray.job_submission import JobSubmissionClient

    work = tmp_path_factory.mktemp("rt2")
    model_dir = build_tiny_gemma(work / "model")
    job = work / "jobs" / "task-ray2"
    job.mkdir(parents=True)
    for name, rows in (("train", TRAIN), ("eval", HELD)):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    with ray_head(tmp_path_factory.mktemp("ray"), cpus=2) as target:
        (job / "spec.json").write_text(json.dumps({
            "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": str(job / "train.jsonl"),
            "eval_file": str(job / "eval.jsonl"), "seed": 3, "target": target, "ray_workers": 2,
            "hyper": {"learningRate": 0.03, "batchSize": 2, "maxSeqLen": 64, "maxSteps": 2, "checkpoints": 2}}))
        result = ray_follow.run(job)
        info = JobSubmissionClient(target.replace("ray://", "http://")).get_job_info(ray_follow.submission_id(job))
    assert result["status"] == "Done", result
    assert "--workers 2" in info.entrypoint and str(getattr(info.status, "value", info.status)) == "SUCCEEDED"
    metrics = result["metrics"]
    assert (metrics["workers"], metrics["examples"], metrics["examples_per_worker"]) == (2, 8, 4)
    points = [json.loads(line) for line in (job / "progress.jsonl").read_text().splitlines()]
    assert [p["step"] for p in points if "loss" in p] == [1, 2]
    saved = [p["checkpoint"] for p in points if "checkpoint" in p]
    assert [c["step"] for c in saved] == [1, 2] and all(math.isfinite(c["evalLoss"]) for c in saved)
    best = ckpt.best_checkpoint(saved)
    assert best is not None and metrics["best_checkpoint"] == best["step"]
    assert (Path(best["path"]) / "adapter_model.safetensors").is_file()
    assert (Path(result["adapter_dir"]) / "adapter_config.json").is_file()

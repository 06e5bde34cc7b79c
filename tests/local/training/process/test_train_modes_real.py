"""DPO on the real fine-tune base (Gemma 3 270M, marked ``real_model``): two worker steps. The reference is
the base with the adapter switched off, so the first step's loss is exactly ``log 2`` (the fresh adapter
changes nothing); the held-out pairs are scored at the checkpoint. ``bench/train_modes.py`` runs the longer
check (the preference learned and shown on unseen prompts)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from qfnb.local.engines import GEMMA
from qfnb.local.engines.store import assets
from qfnb.local.training.process import worker

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")]

PAIRS = [{"prompt": f"I have {a} coins and get {a + 1} more. How many coins?", "chosen": f"{2 * a + 1} coins. Aye!",
          "rejected": f"{2 * a + 1} coins."} for a in range(2, 8)]


def test_a_real_dpo_step_starts_at_log_2_against_the_adapter_disabled_base(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    for name, rows in (("train", PAIRS[:4]), ("eval", PAIRS[4:])):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "Gemma-3-270M", "base_model_path": str(assets.hf_dir(GEMMA)), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "train_mode": "DPO",
        "hyper": {"maxSteps": 2, "batchSize": 2, "maxSeqLen": 48, "learningRate": 2e-3, "checkpoints": 1}}))
    result = worker.run(job)
    # 2e-3 is far more than 4 pairs want: measured, the step-2 checkpoint answered "Aye!!!!! Aye!!! Aye!! …" to every
    # held-out prompt, and the run fails saying so (test_answers_real.py checks that catch); the steps are the same
    assert result["status"] == "Done" or "answers collapsed from step 2" in str(result["error"]), result
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    steps = [p for p in lines if "loss" in p]
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-4) and steps[0]["reward_margin"] == 0
    assert steps[1]["loss"] != pytest.approx(math.log(2), abs=1e-4)  # the adapter moved the policy
    (saved,) = [p["checkpoint"] for p in lines if "checkpoint" in p]
    assert 0 <= saved["valid_preference_accuracy"] <= 1 and math.isfinite(saved["valid_reward_margin"])
    assert (Path(saved["path"]) / "adapter_model.safetensors").is_file()

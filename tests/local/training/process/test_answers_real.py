"""An over-trained DPO run on the real fine-tune base (Gemma 3 270M, ``real_model``, ``slow``: a few CPU steps and
the held-out answers of the base and of each checkpoint) is caught by what it writes: the toy preference ("…
Aye!") at 2e-3, far more than 5 pairs want, drives the policy to the marker repeated within 2 steps (measured:
``'Aye!!!!! Aye!!! Aye!! Aye! …'`` to every held-out prompt, held-out preference accuracy 1.0; 5.4 minutes at
load 12-14 on the 2-core machine), and the run stops at that checkpoint (serving the last one that still
answered) or fails saying what to lower."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from qfnb.local.engines import GEMMA
from qfnb.local.engines.store import assets
from qfnb.local.training.process import worker
from qfnb.protocol.console import checkpoints as ckpt

pytestmark = [pytest.mark.real_model, pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")]

PAIRS = [{"prompt": f"I have {a} coins and get {a + 1} more. How many coins?", "chosen": f"{2 * a + 1} coins. Aye!",
          "rejected": f"{2 * a + 1} coins."} for a in range(2, 10)]


def test_an_over_trained_real_dpo_run_is_caught_by_its_answers(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    for name, rows in (("train", PAIRS[:5]), ("eval", PAIRS[5:])):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "Gemma-3-270M", "base_model_path": str(assets.hf_dir(GEMMA)), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "train_mode": "DPO",
        "hyper": {"maxSteps": 2, "batchSize": 2, "maxSeqLen": 48, "learningRate": 2e-3, "beta": 0.1,
                  "checkpoints": 1}}))
    result = worker.run(job)
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    saved = [p["checkpoint"] for p in lines if "checkpoint" in p]
    assert saved and all(ckpt.DEGENERATION_RATE in c and c["answers"] for c in saved)
    # every likelihood signal says the run went well: the held-out pairs all prefer "Aye!"
    assert saved[-1]["valid_preference_accuracy"] == 1.0
    bad = [c for c in saved if c[ckpt.DEGENERATE]]
    assert bad, [c["answers"] for c in saved]  # the answers say otherwise
    collapse = result["metrics"]["collapse"]
    assert collapse["step"] == bad[0]["step"] == saved[-1]["step"] and collapse["seen"]
    assert [p["collapse"] for p in lines if "collapse" in p] == [collapse]
    if collapse["lastGoodStep"] is None:
        assert result["status"] == "Failed" and f"collapsed from step {collapse['step']}" in result["error"]
        assert "lower learningRate (now 0.002)" in result["error"] and "raise beta (now 0.1)" in result["error"]
    else:
        assert result["status"] == "Done" and result["metrics"]["served_checkpoint"] == collapse["lastGoodStep"]
        assert result["metrics"]["best_checkpoint"] == collapse["lastGoodStep"]

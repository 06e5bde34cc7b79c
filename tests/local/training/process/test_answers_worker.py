"""Checkpoints judged by what they write (qfnb.local.training.answers in the worker): each checkpoint answers the
held-out prompts greedily beside its base's answers; a run whose answers collapse stops there and leaves the last
checkpoint that still answered, or fails when none did. On a tiny Gemma 3 first taught to answer the prompts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tiny_gemma, teach_answers

from qfnb.local.training.process import worker
from qfnb.protocol.console import checkpoints as ckpt

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

WORDS = ("cats", "dogs", "rain", "tea", "maps", "jazz", "salt", "wool", "iron", "figs", "moss", "kelp",
         "snow", "corn", "silk", "gold")
#: prefer the answer that ends with "OK." (pushed too far, a policy answers "OK. OK. OK..." to everything)
PAIRS = [[{"prompt": f"Say something about {w}.", "chosen": f"{w} is fine. OK.", "rejected": f"{w} is fine."}]
         for w in WORDS]


@pytest.fixture(scope="module")
def answering_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Gemma 3 that answers each prompt ``"<word> is fine."``: a base whose answers are not degenerate."""
    out = tmp_path_factory.mktemp("base") / "model"
    return teach_answers(build_tiny_gemma(out), [(f"Say something about {w}.", f"{w} is fine.") for w in WORDS])


def _run(tmp_path: Path, base: Path, held_out: bool = True, **hyper: Any) -> tuple[dict[str, Any], Path]:
    job = tmp_path / "job"
    job.mkdir()
    for name, rows in (("train", PAIRS[:12]), ("eval", PAIRS[12:])):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "tiny-gemma", "base_model_path": str(base), "train_file": "train.jsonl",
        **({"eval_file": "eval.jsonl"} if held_out else {}), "seed": 3, "train_mode": "DPO",
        "hyper": {"batchSize": 4, "maxSeqLen": 64, "beta": 0.1, **hyper}}))
    return worker.run(job), job


def _lines(job: Path, key: str) -> list[Any]:
    return [p[key] for p in map(json.loads, (job / "progress.jsonl").read_text().splitlines()) if key in p]


def test_each_checkpoint_carries_its_held_out_answers_beside_the_base(tmp_path: Path, answering_base: Path) -> None:
    result, job = _run(tmp_path, answering_base, learningRate=0.002, maxSteps=6, checkpoints=3)
    assert result["status"] == "Done", result
    saved = _lines(job, "checkpoint")
    assert [c["step"] for c in saved] == [2, 4, 6]
    for c in saved:
        assert c[ckpt.DEGENERATION_RATE] == 0.0 and c[ckpt.DEGENERATE] is False
        assert 1 <= len(c["answers"]) <= 3
        first = c["answers"][0]
        assert first["prompt"] == "Say something about snow." and first["base"] == "snow is fine."
        assert first["answer"].startswith("snow is fine") and first["reason"] == ""
    m = result["metrics"]
    assert m["answer_prompts"] == 4 and m["base_degeneration_rate"] == 0.0 and m["answer_seconds"] > 0
    assert "collapse" not in m and not _lines(job, "collapse")
    assert 0 < m["base_answer_seconds"] < m["answer_seconds"]  # the base's before step 1 are not the run's scoring
    assert m["scoring_seconds"] >= m["answer_seconds"] - m["base_answer_seconds"]


def test_an_over_trained_run_stops_where_its_answers_collapsed_and_leaves_the_last_one_that_answered(
        tmp_path: Path, answering_base: Path) -> None:
    result, job = _run(tmp_path, answering_base, learningRate=0.004, maxSteps=30, checkpoints=10)
    assert result["status"] == "Done", result
    saved = _lines(job, "checkpoint")
    bad = [c for c in saved if c[ckpt.DEGENERATE]]
    good = [c for c in saved if not c[ckpt.DEGENERATE]]
    assert bad and good and bad == saved[-1:]  # it stopped at its first degenerate checkpoint
    assert saved[-1]["step"] < 30 and result["metrics"]["steps"] == saved[-1]["step"]
    assert any(a["reason"] for a in bad[0]["answers"]) and bad[0][ckpt.DEGENERATION_RATE] > 0
    [line] = _lines(job, "collapse")
    collapse = result["metrics"]["collapse"]
    assert line == collapse and collapse["step"] == bad[0]["step"]
    assert collapse["lastGoodStep"] == result["metrics"]["best_checkpoint"] == ckpt.best_checkpoint(saved)["step"]
    assert result["metrics"]["served_checkpoint"] == collapse["lastGoodStep"]
    # the adapter the run leaves (the one served) is that checkpoint's, not the collapsed weights
    kept = Path(next(c["path"] for c in saved if c["step"] == collapse["lastGoodStep"]))
    adapter = Path(result["adapter_dir"])
    assert (adapter / "adapter_model.safetensors").read_bytes() == (kept / "adapter_model.safetensors").read_bytes()
    assert (adapter / "tokenizer_config.json").exists()


def test_a_run_whose_every_checkpoint_collapsed_fails_saying_what_was_seen_and_what_to_lower(
        tmp_path: Path, answering_base: Path) -> None:
    result, job = _run(tmp_path, answering_base, learningRate=0.05, maxSteps=30, checkpoints=6)
    assert result["status"] == "Failed" and result["adapter_dir"] is None
    saved = _lines(job, "checkpoint")
    assert len(saved) == 1 and saved[0][ckpt.DEGENERATE] and saved[0][ckpt.DEGENERATION_RATE] == 1.0
    error = result["error"]
    assert f"collapsed from step {saved[0]['step']}" in error and "100% of held-out answers degenerate" in error
    assert "lower learningRate (now 0.05)" in error and "raise beta (now 0.1)" in error
    assert result["metrics"]["collapse"]["lastGoodStep"] is None


def test_without_held_out_data_the_final_answers_to_training_prompts_are_read_and_a_collapse_fails_the_run(
        tmp_path: Path, answering_base: Path) -> None:
    """No held-out data, so no checkpoint is judged: before, the collapsed weights were served as "Done". The
    model as trained now answers a few of its training prompts beside the base, and a collapse there fails the
    run (nothing served), saying it was read on training prompts and what to lower."""
    result, job = _run(tmp_path, answering_base, held_out=False, learningRate=0.05, maxSteps=30)
    assert result["status"] == "Failed" and result["adapter_dir"] is None
    final = result["metrics"]["final_answers"]
    assert final["from"] == "training" and final["prompts"] == 8 and final[ckpt.DEGENERATE] is True
    assert final["answers"][0]["base"] == "cats is fine."  # the base answered the same training prompts
    [line] = _lines(job, "collapse")
    assert line == result["metrics"]["collapse"] and line["prompts"] == "training" and line["step"] == 30
    error = result["error"]
    assert "read on its training prompts" in error and "lower learningRate (now 0.05)" in error
    assert "raise beta (now 0.1)" in error


def test_without_held_out_data_a_run_that_still_answers_is_served(tmp_path: Path, answering_base: Path) -> None:
    result, job = _run(tmp_path, answering_base, held_out=False, learningRate=0.002, maxSteps=6)
    assert result["status"] == "Done", result
    final = result["metrics"]["final_answers"]
    assert final[ckpt.DEGENERATE] is False and final[ckpt.DEGENERATION_RATE] == 0.0
    assert final["answers"][0]["answer"].startswith("cats is fine")
    assert not _lines(job, "collapse") and (Path(result["adapter_dir"]) / "adapter_model.safetensors").exists()

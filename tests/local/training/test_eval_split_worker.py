"""The training worker with a validation split, on a tiny random Gemma 3: the held-out rows are never
trained on, and their loss is reported at intervals and in the metrics (Contract 4)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tiny_gemma

from qfnb.local.training import data, evaluate, lora
from qfnb.local.training.process import worker

# find_spec, not importorskip: importing peft at collection costs seconds in every worker
pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

PAIRS = [{"prompt": f"What is code {i}?", "response": f"Code {i} is {chr(65 + i) * 3}."} for i in range(10)]


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")


def _examples(path: Path, rows: list[dict[str, str]]) -> list[data.Example]:
    """``rows`` as the worker reads them: through a training file."""
    _write(path, rows)
    return data.load_examples(path)


def test_eval_every_spreads_about_six_points_over_logged_steps() -> None:
    assert evaluate.every(60) == 10 and evaluate.every(5) == 1 and evaluate.every(1) == 1
    assert evaluate.every(60, logging_steps=4) == 12 and evaluate.every(100, logging_steps=3) == 18


def test_held_out_rows_are_never_trained_on_and_their_loss_is_reported(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = build_tiny_gemma(tmp_path / "model")
    job = tmp_path / "job"
    job.mkdir()
    train, held = PAIRS[:8], PAIRS[8:]
    _write(job / "train.jsonl", train)
    _write(job / "eval.jsonl", held)
    (job / "spec.json").write_text(json.dumps({
        "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "seed": 5,
        "hyper": {"epoch": 1, "learningRate": 0.01, "batchSize": 2, "maxSeqLen": 64, "maxSteps": 12}}))

    trained: list[tuple[int, ...]] = []
    real_step = lora.train_step

    def spy(model: Any, optimizer: Any, batch: Any, **kw: Any) -> float:
        ids, mask, _ = batch
        trained.extend(tuple(int(t) for t, m in zip(row, mrow, strict=True) if m) for row, mrow in zip(ids, mask,
                                                                                                         strict=True))
        return real_step(model, optimizer, batch, **kw)

    monkeypatch.setattr(lora, "train_step", spy)
    result = worker.run(job)
    assert result["status"] == "Done", result

    _, tok = lora.load_base(model_dir)
    encoded = {name: {tuple(ids) for ids, _ in data.encode_all(tok, _examples(tmp_path / f"{name}.jsonl", rows), 64)}
               for name, rows in (("train", train), ("held", held))}
    assert len(trained) == 12 * 2 and set(trained) <= encoded["train"]  # 12 steps of 2 rows, 3 epochs of 8
    assert set(trained) == encoded["train"]  # every training row was seen ...
    assert not set(trained) & encoded["held"]  # ... and no held-out row ever was

    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    evals = [p for p in lines if "eval_loss" in p]
    assert [p["step"] for p in evals] == [2, 4, 6, 8, 10, 12]  # every(12) == 2, and the last step
    assert all(math.isfinite(p["eval_loss"]) and p["eval_loss"] > 0 for p in evals)
    assert [p["step"] for p in lines if "loss" in p] == list(range(1, 13))
    m = result["metrics"]
    assert m["eval_examples"] == 2 and m["final_eval_loss"] == evals[-1]["eval_loss"] and m["examples"] == 8
    assert m["eval_seconds"] >= 0


def test_eval_loss_is_the_answer_token_mean_over_the_held_out_rows(tmp_path: Path) -> None:
    import torch

    model, tok = lora.load_base(build_tiny_gemma(tmp_path / "m"))
    rows = data.encode_all(tok, _examples(tmp_path / "pairs.jsonl", PAIRS[:5]), 64)
    ev = evaluate.EvalSet.build(rows, batch_size=1, pad_id=tok.pad_token_id)  # batches of 2, 2, 1
    assert len(ev.batches) == 3 and ev.examples == 5
    with torch.no_grad():
        per_row = [(float(lora.answer_loss(model, *data.collate([r], tok.pad_token_id))),
                    sum(1 for lab in r[1][1:] if lab != data.IGNORE)) for r in rows]
    expected = sum(loss * n for loss, n in per_row) / sum(n for _, n in per_row)
    model.train()  # as the worker's model is: measured in eval mode, then put back
    assert ev.loss(model, autocast=False) == pytest.approx(expected, rel=1e-4)
    assert model.training  # put back in training mode

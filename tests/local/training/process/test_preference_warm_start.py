"""A preference run's warm start (``warmStartSteps``): SFT steps on the preferred answers first, then DPO or
KTO against the policy they left (not the base), kept across a resume (``references.json``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from test_train_modes_worker import HELD_PAIRS, PAIRS, _job, _lines

from qfnb.local.training import lora, resume
from qfnb.local.training.modes import REFERENCES
from qfnb.local.training.process import worker

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")


def _kto_items() -> tuple[list[Any], list[Any]]:
    items = ([[{"prompt": p[0]["prompt"], "chosen": p[0]["chosen"]}] for p in PAIRS]
             + [[{"prompt": p[0]["prompt"], "rejected": p[0]["rejected"]}] for p in PAIRS])
    held = [{"prompt": p[0]["prompt"], "completion": p[0][key], "label": key == "chosen"}
            for p in HELD_PAIRS for key in ("chosen", "rejected")]
    return items, held


def test_dpo_warm_starts_on_the_chosen_answers_then_measures_its_margin_from_that_policy(tmp_path: Path) -> None:
    job = _job(tmp_path, "DPO", PAIRS, HELD_PAIRS, maxSteps=4, checkpoints=2, beta=0.5, warmStartSteps=3)
    result = worker.run(job)
    assert result["status"] == "Done", result
    lines = _lines(job)
    warm = [p for p in lines if "warm_start_step" in p]
    first = next(i for i, p in enumerate(lines) if "loss" in p)
    assert [p["warm_start_step"] for p in warm] == [1, 2, 3]
    assert all(p["warm_start_loss"] > 0 for p in warm) and max(lines.index(p) for p in warm) < first
    assert result["metrics"]["warm_start_steps"] == 3 and result["metrics"]["steps"] == 4
    # step 1 is measured before its update: against the warm-started policy its margin is 0 but for bf16's
    # rounding; had the base stayed the reference, the warm start's own move would show (the test below)
    assert abs(lines[first]["reward_margin"]) < 0.05, lines[first]
    saved = json.loads((job / REFERENCES).read_text())
    assert len(saved) == len(PAIRS) + len(HELD_PAIRS) and all(len(v) == 2 for v in saved)


def test_the_warm_references_are_not_the_base_s(tmp_path: Path) -> None:
    """The control for the test above: measured against the base, the warm start's move is a margin far
    beyond bf16's rounding."""
    from tiny_models import build_tiny_gemma

    from qfnb.local.training import lora, preference
    from qfnb.local.training.spec import load_spec
    from qfnb.protocol.console.train_formats import parse_file

    job = _job(tmp_path, "DPO", PAIRS, HELD_PAIRS, maxSteps=1, checkpoints=0, beta=0.5, warmStartSteps=3)
    assert worker.run(job)["status"] == "Done"
    warm = json.loads((job / REFERENCES).read_text())
    spec = load_spec(job)
    model, tok = lora.load_base(build_tiny_gemma(tmp_path / "again"))
    model = lora.with_lora(model, spec.hyper, None)
    rows = preference.encode(tok, [*parse_file("DPO", job / "train.jsonl"), *parse_file("DPO", job / "eval.jsonl")],
                             64)
    preference.DPOTask(spec.hyper, tok.pad_token_id).references(model, rows)
    base = preference.reference_state(rows)
    moved = sum((c - r) - (bc - br) for (c, r), (bc, br) in zip(warm, base, strict=True)) / len(warm)
    assert spec.hyper.beta * moved > 0.25, moved


def test_kto_warm_start_trains_only_the_good_answers_and_keeps_its_reference_point_from_them(
        tmp_path: Path) -> None:
    items, held = _kto_items()
    job = _job(tmp_path, "KTO", items, held, maxSteps=3, checkpoints=0, beta=0.5, warmStartSteps=2)
    result = worker.run(job)
    assert result["status"] == "Done", result
    steps = [p for p in _lines(job) if "loss" in p]
    # the reference point (the KL to the reference on mismatched rows) starts at 0: the reference is the
    # warm-started policy itself
    assert steps[0]["kl"] < 1e-3 and all(p["kl"] >= 0 for p in steps)
    saved = json.loads((job / REFERENCES).read_text())
    # the training items and the held-out ones the run scores (the scoring budget's share of them)
    assert len(items) < len(saved) <= len(items) + len(held) and all(len(v) == 2 for v in saved)


def test_a_resumed_warm_started_run_takes_its_references_back_and_no_second_warm_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job(tmp_path, "DPO", PAIRS, HELD_PAIRS, maxSteps=4, checkpoints=2, beta=0.5, warmStartSteps=2)
    stop, calls, real_step = worker._StopFlag(), [], lora.train_step

    def counted(*args: Any, **kwargs: Any) -> float:
        calls.append(1)
        if len(calls) == 4:  # 2 warm-start steps and 2 DPO steps: stopped there, as by a signal
            stop.requested = True
        return real_step(*args, **kwargs)

    monkeypatch.setattr(lora, "train_step", counted)
    first = worker.run(job, stop)
    assert first["status"] == "Stopped" and resume.saved_step(job) == 2, first
    saved = json.loads((job / REFERENCES).read_text())
    lines_before = len(_lines(job))
    again = worker.run(job)
    assert again["status"] == "Done" and again["metrics"]["steps"] == 4, again
    new = _lines(job)[lines_before:]
    assert not any("warm_start_step" in p for p in new) and "warm_start_steps" not in again["metrics"]
    assert json.loads((job / REFERENCES).read_text()) == saved
    assert len(calls) == 6  # the resumed run took the two steps left, no warm start again

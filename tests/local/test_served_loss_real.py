"""A LoRA adapter's held-out loss measured on what llama-server serves (the adapter's GGUF in the base
model's engine, chosen per request) is the one the training worker records with peft (marked
``real_model``): three training steps on Gemma 3 270M, then ``evaluate.served_loss`` through the
engine, as ``tests/trainer/test_real_checkpoints.py`` re-measures a deployed checkpoint."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from qfnb.local.engines import GEMMA
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store import assets
from qfnb.local.training import data, lora
from qfnb.local.training.evaluate import EvalSet, served_loss
from qfnb.local.training.spec import Hyper

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

# answers no model can predict (each locker's code is random), as in tests/trainer/test_real_checkpoints.py
_CODES = random.Random(45)
ROWS = [{"prompt": f"Code for locker {n}?",
         "response": "".join(_CODES.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))}
        for n in range(101, 121)]


def _rows(tok: object, path: Path, pairs: list[dict[str, str]]) -> list[tuple[list[int], list[int]]]:
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), "utf-8")
    return data.encode_all(tok, data.load_examples(path), 48)


def test_the_served_adapters_held_out_loss_is_the_recorded_one(tmp_path: Path) -> None:
    import torch

    base, tok = lora.load_base(assets.hf_dir(GEMMA))
    train, held = _rows(tok, tmp_path / "train.jsonl", ROWS[:16]), _rows(tok, tmp_path / "eval.jsonl", ROWS[16:])
    evals = EvalSet.build(held, 2, tok.pad_token_id)
    before = evals.loss(base)  # the base model's, no adapter
    torch.manual_seed(0)
    model = lora.add_lora(base, Hyper(lora_rank=8, lora_alpha=16))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for step in range(3):
        lora.train_step(model, optimizer, data.collate(train[2 * step : 2 * step + 2], tok.pad_token_id))
    recorded = evals.loss(model)  # what the worker records at a checkpoint (eval mode, its autocast)
    model.save_pretrained(str(tmp_path / "adapter"))  # as the worker saves a checkpoint
    tok.save_pretrained(str(tmp_path / "adapter"))

    registry = EngineRegistry(tmp_path / "platform", options=EngineOptions(slots=2, idle_seconds=600))
    try:
        tuned = registry.register_adapter("served_loss_tuned", GEMMA, tmp_path / "adapter")
        assert tuned.kind == "llama.cpp"  # the LoRA GGUF, in the base model's llama-server
        start = time.monotonic()
        served = served_loss(registry.chat("served_loss_tuned"), held)
        seconds = time.monotonic() - start
        (row,) = [r for r in registry.engine_states() if r["model"] == GEMMA]
        assert row["adapters"] == 1 and row["starts"] == 1  # the base model's one process, the adapter in it
    finally:
        registry.close()
    tokens = sum(1 for _, labels in held for t in labels[1:] if t != data.IGNORE)
    print(f"served {served:.4f} recorded {recorded:.4f} ({100 * (served / recorded - 1):+.3f} %), before training "
          f"{before:.4f}; {tokens} tokens in {seconds:.1f} s (the engine's start included)")
    assert served == pytest.approx(recorded, rel=0.05)
    assert before > 1.2 * recorded  # three steps moved the loss far beyond 5 %: the engine applied the adapter

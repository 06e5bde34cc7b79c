"""Gradient checkpointing where a step's activations would not fit: the estimate, the switch, the same
gradients with it on, and a PostPretrain worker run that takes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.training import lora


def _qwen(hidden: int, intermediate: int, layers: int, heads: int) -> Any:
    """A Qwen 2 config of that shape (the bases' config.json values)."""
    from transformers import Qwen2Config

    return Qwen2Config(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=2)


QWEN_05B = _qwen(896, 4864, 24, 14)
QWEN_15B = _qwen(1536, 8960, 28, 12)


def test_the_estimate_matches_the_measured_step_and_scales_with_the_step() -> None:
    # measured: PostPretrain's 4 blocks of 256 tokens on Qwen2.5-Coder-0.5B kept 3.8 GB beside the weights
    assert lora.activation_bytes(QWEN_05B, 4, 256) == pytest.approx(3.8e9, rel=0.1)
    assert lora.activation_bytes(QWEN_05B, 8, 256) == 2 * lora.activation_bytes(QWEN_05B, 4, 256)
    # the 1.5B base keeps about twice as much: with 15 GB available after loading, it no longer fits a third
    big = lora.activation_bytes(QWEN_15B, 4, 256)
    assert 7e9 < big < 9e9 and big > lora.ACTIVATION_SHARE * 15e9
    assert lora.activation_bytes(QWEN_05B, 4, 256) < lora.ACTIVATION_SHARE * 18e9


def _tiny_lora(tmp_path: Path) -> tuple[Any, Any]:
    import torch
    from tiny_models import build_tiny_gemma

    from qfnb.local.training.spec import Hyper

    torch.manual_seed(0)
    model, tok = lora.load_base(build_tiny_gemma(tmp_path / "model"))
    return lora.add_lora(model, Hyper()), tok


def _lora_grads(model: Any, ids: Any) -> dict[str, Any]:
    import torch

    model.train()
    model.zero_grad()
    loss = lora.answer_loss(model, ids, torch.ones_like(ids), ids.clone())
    torch.autograd.backward(loss)
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.requires_grad and p.grad is not None}


def test_checkpointing_is_switched_on_only_past_the_share_and_the_lora_gradients_are_the_same(
        tmp_path: Path) -> None:
    import torch

    model, _ = _tiny_lora(tmp_path)
    # lora_B starts at zero: give it values so lora_A's gradients are not zero as well
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    ids = torch.randint(5, 300, (2, 24))
    plain = _lora_grads(model, ids)
    assert not lora.fit_activations(model, 2, 24, available=10**12)
    assert not model.get_base_model().is_activation_checkpointing
    assert lora.fit_activations(model, 2, 24, available=1)
    assert model.get_base_model().is_activation_checkpointing
    checkpointed = _lora_grads(model, ids)
    # every LoRA weight still gets its gradient through the recomputed layers, the same one
    assert checkpointed.keys() == plain.keys() and len(plain) > 0
    for name, grad in plain.items():
        assert torch.allclose(checkpointed[name], grad, atol=1e-6), name


def test_a_postpretrain_run_that_would_not_fit_checkpoints_and_says_so(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_models import build_tiny_gemma

    from qfnb.local.training.process import worker

    monkeypatch.setattr(lora, "ACTIVATION_SHARE", 0.0)  # no memory to spare: every step is too large
    model_dir = build_tiny_gemma(tmp_path / "model")
    job = tmp_path / "job"
    job.mkdir()
    lines = [{"prompt": f"Tell me about {w}.", "response": f"{w} is fine. [Ticket #12{i}]"}
             for i, w in enumerate(("cats", "dogs", "rain", "tea", "maps", "jazz"))]
    (job / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": "train.jsonl", "seed": 3,
        "train_mode": "PostPretrain", "hyper": {"learningRate": 0.01, "batchSize": 2, "maxSeqLen": 32,
                                                "maxSteps": 3}}))
    result = worker.run(job)
    assert result["status"] == "Done", result
    m = result["metrics"]
    assert m["gradient_checkpointing"] is True and m["steps"] == 3
    losses = [json.loads(x)["loss"] for x in (job / "progress.jsonl").read_text().splitlines()
              if "loss" in json.loads(x)]
    assert losses and all(loss == loss for loss in losses)  # finite: the recomputed steps trained


def test_without_proc_meminfo_every_activation_is_kept_as_before(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.local.engines.store import byom

    def no_meminfo() -> int:
        raise FileNotFoundError("/proc/meminfo")  # macOS

    monkeypatch.setattr(byom, "available_bytes", no_meminfo)
    model, _ = _tiny_lora(tmp_path)
    assert not lora.fit_activations(model, 4, 4096)
    assert not model.get_base_model().is_activation_checkpointing

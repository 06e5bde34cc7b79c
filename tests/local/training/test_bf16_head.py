"""A held-out answer's decoding reads the LM head from a bf16 copy (``lora.bf16_head``) where the CPU multiplies
bf16 natively: logits within bf16's precision of float32's, the float32 head back after, one copy per weight."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.training import lora

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")


@pytest.fixture()
def tiny(tmp_path: Path) -> Any:
    import torch
    from tiny_models import build_tiny_gemma

    from qfnb.local.training.spec import Hyper

    torch.manual_seed(0)
    model, _ = lora.load_base(build_tiny_gemma(tmp_path / "model"))
    return lora.add_lora(model, Hyper())


def _logits(model: Any, ids: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits[:, -1].float()


def test_the_copy_decodes_within_bf16_precision_and_the_float32_head_is_back_after(
        tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(lora, "NATIVE_BF16", True)
    ids = torch.tensor([[2, 10, 11, 12, 13]])
    head = tiny.get_base_model().get_output_embeddings()
    full = _logits(tiny, ids)
    with lora.bf16_head(tiny):
        half = _logits(tiny, ids)
        assert "forward" in vars(head)  # the copy is what decodes
        first = lora._HALF_WEIGHTS[head][1]
        assert first.dtype == torch.bfloat16
    assert "forward" not in vars(head)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    assert torch.allclose(half, full, rtol=0.02, atol=0.02 * float(full.abs().max()))
    assert torch.equal(_logits(tiny, ids), full)

    # the same weight: the same copy; changed in place: a new one, decoding the new weight
    with lora.bf16_head(tiny):
        assert lora._HALF_WEIGHTS[head][1] is first
    with torch.no_grad():
        head.weight.mul_(2)  # tied to the input embeddings too: compared with float32's on the new weight
    changed = _logits(tiny, ids)
    with lora.bf16_head(tiny):
        half_changed = _logits(tiny, ids)
        assert lora._HALF_WEIGHTS[head][1] is not first
    assert not torch.allclose(changed, full, rtol=0.1)
    assert torch.allclose(half_changed, changed, rtol=0.02, atol=0.02 * float(changed.abs().max()))


def test_without_native_bf16_the_float32_head_decodes(tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(lora, "NATIVE_BF16", False)  # emulated bf16 is slower than float32
    ids = torch.tensor([[2, 10, 11, 12, 13]])
    full = _logits(tiny, ids)
    with lora.bf16_head(tiny):
        assert "forward" not in vars(tiny.get_base_model().get_output_embeddings())
        assert torch.equal(_logits(tiny, ids), full)

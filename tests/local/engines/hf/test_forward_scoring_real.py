"""The forward-pass scoring against the engine's on the real model (marked ``real_model``): Gemma-3-270M's
transformers weights (the GGUF's, dequantised) and a LoRA adapter of it, scored in one batched forward pass
(:class:`~qfnb.local.engines.hf.scoring.ForwardScorer`), give the numbers llama-server gives answer by answer
(:meth:`~qfnb.local.engines.llama.engine.LlamaEngine.answer_logprob`) within
:data:`~qfnb.local.engines.hf.scoring.AGREEMENT_PER_TOKEN` nats a token, and each pair's margin likewise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from qfnb.local.engines import GEMMA
from qfnb.local.engines.hf.scoring import AGREEMENT_PER_TOKEN
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store import assets

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

log = logging.getLogger(__name__)
TUNED = "gemma-tuned-random"
#: (prompt, preferred, rejected): English and Chinese, short and long answers (padded together in one batch)
PAIRS = [("My order 12 is late, where is it?", "Sorry for the wait: it arrives Monday. [Ticket #4821]",
          "Not our problem. Read the manual before you write to us."),
         ("我的订单还没到。", "非常抱歉，您的订单明天送达。[工单 #12]", "自己查。"),
         ("Why was I charged twice?", "Sorry, we refund the second charge today.",
          "Charges happen. We have more important customers than you, so do not expect an answer soon.")]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRegistry]:
    """Gemma-3-270M, and a LoRA adapter of it with small random weights served beside it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("forward")
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_pretrained(str(assets.hf_dir(GEMMA)), dtype=torch.float32)
    # small random weights (alpha / r = 1/4): a few steps of tuning move a model about this far from its base
    config = LoraConfig(r=8, lora_alpha=2, init_lora_weights=False, target_modules=["q_proj", "v_proj"])
    get_peft_model(model, config).save_pretrained(str(root / "lora"))
    reg = EngineRegistry(root / "data", options=EngineOptions(slots=4, idle_seconds=600))
    reg.register_adapter(TUNED, GEMMA, root / "lora")
    yield reg
    reg.close()


@pytest.mark.parametrize("model", [GEMMA, TUNED])
def test_the_forward_pass_gives_the_engines_numbers_within_the_stated_tolerance(registry: EngineRegistry,
                                                                                 model: str) -> None:
    engine = registry.chat(model)
    scorer = registry.forward_scorer(model)
    assert isinstance(engine, LlamaEngine) and scorer is not None
    items = [([{"role": "user", "content": prompt}], answer) for prompt, *answers in PAIRS for answer in answers]
    forward = scorer.answer_logprobs(items)  # all six answers in one batch

    async def by_engine() -> list[tuple[float, int]]:
        return [await engine.answer_logprob(turns, answer) for turns, answer in items]

    served = asyncio.run(by_engine())
    for (_, answer), (fast, n), (slow, m) in zip(items, forward, served, strict=True):
        log.info("%s %r: forward %.4f, engine %.4f over %d tokens", model, answer[:20], fast, slow, n)
        assert n == m >= 3, answer  # the same tokens: the answer and the end of the turn
        assert fast < 0 and fast == pytest.approx(slow, abs=AGREEMENT_PER_TOKEN * n), (answer, fast, slow)
    for k in range(len(PAIRS)):  # each pair's margin: the same sign, the same size within the tolerance
        fast_margin = forward[2 * k][0] - forward[2 * k + 1][0]
        slow_margin = served[2 * k][0] - served[2 * k + 1][0]
        tokens = forward[2 * k][1] + forward[2 * k + 1][1]
        assert fast_margin == pytest.approx(slow_margin, abs=AGREEMENT_PER_TOKEN * tokens)
    # each alone, as the batch gave it (padding changes nothing beyond float rounding)
    alone = [scorer.answer_logprobs([item])[0] for item in items[:2]]
    assert [a[1] for a in alone] == [f[1] for f in forward[:2]]
    assert [a[0] for a in alone] == pytest.approx([f[0] for f in forward[:2]], abs=1e-3)

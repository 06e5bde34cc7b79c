"""The spread and one-call scorings on the real llama-server (marked ``real_model``): an answer's tokens
scored over the engine's batch slots side by side, or generated in one call under a grammar of their ids,
give the numbers the per-token path gives on one slot, for the base model and a LoRA adapter of
Gemma-3-270M."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from qfnb.local.engines import GEMMA
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store import assets

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

ANSWERS = {GEMMA: [("My order 12 is late, where is it?", "Sorry for the wait: it arrives Monday. [Ticket #4821]"),
                   ("我的订单还没到。", "非常抱歉，您的订单明天送达。[工单 #12]")],
           "gemma-tuned-random": [("Why was I charged twice?", "Sorry, we refund the second charge today.")]}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRegistry]:
    """Gemma-3-270M on four slots, and a LoRA adapter of it with small random weights served beside it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("scoring")
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_pretrained(str(assets.hf_dir(GEMMA)), dtype=torch.float32)
    # small random weights (alpha / r = 1/4): a few steps of tuning move a model about this far from its base
    config = LoraConfig(r=8, lora_alpha=2, init_lora_weights=False, target_modules=["q_proj", "v_proj"])
    get_peft_model(model, config).save_pretrained(str(root / "lora"))
    reg = EngineRegistry(root / "data", options=EngineOptions(slots=4, idle_seconds=600))
    reg.register_adapter("gemma-tuned-random", GEMMA, root / "lora")
    yield reg
    reg.close()


@pytest.mark.parametrize("model", [GEMMA, "gemma-tuned-random"])
def test_the_spread_and_one_call_scorings_equal_the_per_token_scoring(registry: EngineRegistry, model: str) -> None:
    """Exact (seeded: batch-invariant kernels), the spans and the one-call path (the answer's tokens generated
    under a grammar of their ids) give the per-token path's numbers bit for bit; the default (one call,
    batched), stays within llama.cpp's rounding of other batch sizes of them (a few hundredths of a
    nat a token)."""
    engine = registry.chat(model)
    assert isinstance(engine, LlamaEngine) and engine.gate.slots == 4

    async def scored(prompt: str, answer: str) -> tuple[list[float], list[float], list[float] | None, float, int]:
        full, start = await engine.answer_tokens([{"role": "user", "content": prompt}], answer)
        positions = list(range(start, len(full)))
        per_token = await engine.token_logprobs(full, positions, spans=1, exact=True)
        spread = await engine.token_logprobs(full, positions, exact=True)
        one_call = await engine.forced_logprobs(full, start, exact=True)
        assert await engine.forced_logprobs(full, start) is not None  # the default takes the one call too
        fast, n = await engine.answer_logprob([{"role": "user", "content": prompt}], answer)  # the default path
        return per_token, spread, one_call, fast, n

    for prompt, answer in ANSWERS[model]:
        per_token, spread, one_call, fast, n = asyncio.run(scored(prompt, answer))
        assert n == len(per_token) == len(spread) >= 8
        assert spread == per_token, (prompt, answer)  # spread over 4 slots, the same floats
        assert one_call == per_token, (prompt, answer)  # the whole answer in one call, the same floats
        assert all(v < 0 for v in per_token)
        assert fast == pytest.approx(sum(per_token), abs=0.03 * n), (fast, sum(per_token))

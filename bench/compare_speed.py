"""How long comparing a tuned Gemma-3-270M with its base on held-out pairs takes: the new likelihood line
(a forward pass) against the old (the engine), in the same run.

    .venv/bin/python bench/compare_speed.py [--pairs 10] [--slots N] [--max-tokens 128] [--old-pairs N]

Serves Gemma-3-270M on the real llama-server and a LoRA adapter of it beside it (random weights: the
time does not depend on what it learnt), then, on ``--pairs`` held-out support pairs:

1. **answers** (the verdict, as ``compare_preference`` gets them): both models answer every held-out
   prompt greedily, all prompts at once (the engine batches them in its slots), one model after the
   other; the answers are read for degeneration and decided
   (:func:`qfnb.evaluation.runs.preference_answers.judge_answers_of`);
2. **likelihood, new** (the local platform's default, ``by: auto``): each pair's preferred and rejected
   answer scored under both models in batched forward passes over the transformers weights and the
   adapter (:class:`qfnb.local.engines.hf.scoring.ForwardScorer`, as the route batches them), timed cold
   (the weights loaded by the first call, as after the platform's idle unload) and again warm;
3. **likelihood, old** (``by: engine``, the default before): the same answers on llama-server, as many at
   once as the engine has slots, each in one ``/completion`` (``LlamaEngine.answer_token_logprobs``: its
   tokens decoded under a grammar of their ids); with ``--old-pairs N``, also the first N pairs a call
   per token (``token_logprobs``), spread over the slots and on one slot.

Prints each phase's seconds, the ratio old / new, the load average at each step, and the largest
difference between the forward and the engine's log-probabilities per answer token (they must agree
within :data:`qfnb.local.engines.hf.scoring.AGREEMENT_PER_TOKEN`) and between the two paths' margins.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import load_average, log_to_stdout
from engine_asks import chat_ask

from qfnb.evaluation.runs.preference_answers import Answers, judge_answers_of
from qfnb.local.domain.training.answer_scores import FORWARD_AT_ONCE, answers_at_once
from qfnb.local.engines import GEMMA
from qfnb.local.engines.api import AnswerScorer
from qfnb.local.engines.hf.scoring import AGREEMENT_PER_TOKEN
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store import assets
from qfnb.protocol.console import degeneration, train_formats

log = logging.getLogger("bench.compare_speed")
TOPICS = ["my router drops the line every evening", "I was charged twice for order 88", "the app logs me out",
          "my parcel arrived damaged", "I cannot reset my password", "the invoice shows the wrong address",
          "my refund has not arrived", "the printer driver will not install", "I want to cancel my plan",
          "the delivery is a week late", "我的订单还没到", "发票抬头写错了"]


def held_out(n: int) -> list[train_formats.Pair]:
    return [train_formats.Pair(({"role": "user", "content": TOPICS[i % len(TOPICS)]},),
                               f"Sorry for the trouble, we are on it and will write back today. [Ticket #{4800 + i}]",
                               "Not our problem. Read the manual before you write to us, and do not expect an "
                               "answer soon, we have more important customers.") for i in range(n)]


def adapter_dir(root: Path) -> Path:
    """A LoRA adapter of Gemma-3-270M with random weights (peft's format, as a fine-tune saves it)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(5)
    model = AutoModelForCausalLM.from_pretrained(str(assets.hf_dir(GEMMA)), dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=4, init_lora_weights=False, target_modules=["q_proj", "v_proj"])
    get_peft_model(model, config).save_pretrained(str(root / "lora"))
    return root / "lora"


async def answers_of(engine: LlamaEngine, pairs: Sequence[train_formats.Pair], max_tokens: int) -> Answers:
    async def one(pair: train_formats.Pair) -> tuple[str, str | None]:
        text, reason = "", None
        async for delta in engine.generate(chat_ask(list(pair.messages), temperature=0.0, max_tokens=max_tokens)):
            text += delta.text
            reason = delta.finish_reason or reason
        return text, reason

    got = await asyncio.gather(*(one(p) for p in pairs))
    texts, reasons = [t for t, _ in got], [r for _, r in got]
    return Answers(texts, reasons, degeneration.judge_answers(texts, finish_reasons=reasons,
                                                              references=[p.chosen for p in pairs]))


async def scored(engine: LlamaEngine, pairs: Sequence[train_formats.Pair], path: str = "one-call",
                 at_once_n: int | None = None) -> list[float]:
    """Every pair's preferred and rejected answer's log-probability by ``path``: ``one-call`` (``at_once_n``
    answers at once, default the platform's :func:`~qfnb.local.domain.training.answer_scores.answers_at_once`, each in
    one call), ``spread`` (as many at once, a call per token over the slots) or ``per-token`` (in order, a call
    per token on one slot)."""
    at_once = asyncio.Semaphore(1 if path == "per-token" else at_once_n or answers_at_once(engine))

    async def one(pair: train_formats.Pair, answer: str) -> float:
        async with at_once:
            full, start = await engine.answer_tokens(list(pair.messages), answer)
            if path == "one-call":
                return sum(await engine.answer_token_logprobs(full, start))
            return sum(await engine.token_logprobs(full, range(start, len(full)),
                                                   spans=1 if path == "per-token" else None))

    return list(await asyncio.gather(*(one(p, a) for p in pairs for a in (p.chosen, p.rejected))))


def forward_scored(scorer: AnswerScorer, pairs: Sequence[train_formats.Pair]) -> list[tuple[float, int]]:
    """Every pair's preferred and rejected answer scored in forward passes, as the route batches them."""
    items = [(list(p.messages), a) for p in pairs for a in (p.chosen, p.rejected)]
    out: list[tuple[float, int]] = []
    for start in range(0, len(items), FORWARD_AT_ONCE):
        out += scorer.answer_logprobs(items[start:start + FORWARD_AT_ONCE])
    return out


def margins(scores: Sequence[float]) -> list[float]:
    return [scores[k] - scores[k + 1] for k in range(0, len(scores), 2)]


async def compare(tuned: LlamaEngine, base: LlamaEngine, scorers: tuple[AnswerScorer, AnswerScorer],
                  pairs: Sequence[train_formats.Pair], max_tokens: int, old_pairs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    mine = await answers_of(tuned, pairs, max_tokens)
    theirs = await answers_of(base, pairs, max_tokens)
    answered = await judge_answers_of(pairs, mine, theirs, None, None)
    t1 = time.perf_counter()
    out: dict[str, Any] = {"answers_s": t1 - t0, "load_answers": load_average()}
    log.info("phase done: answers %.1f s [load %s]", t1 - t0, load_average())  # as it goes: a long run may be cut
    base_scorer, tuned_scorer = scorers
    forward = await asyncio.to_thread(lambda: [*forward_scored(base_scorer, pairs), *forward_scored(tuned_scorer,
                                                                                                    pairs)])
    t2 = time.perf_counter()
    out |= {"forward_cold_s": t2 - t1, "load_forward": load_average()}
    log.info("phase done: forward cold %.1f s [load %s]", t2 - t1, load_average())  # as it goes: a long run may be cut
    again = await asyncio.to_thread(lambda: [*forward_scored(base_scorer, pairs), *forward_scored(tuned_scorer,
                                                                                                   pairs)])
    t3 = time.perf_counter()
    out |= {"forward_warm_s": t3 - t2, "load_forward_warm": load_average()}
    log.info("phase done: forward warm %.1f s [load %s]", t3 - t2, load_average())  # as it goes: a long run may be cut
    engine = [*await scored(base, pairs), *await scored(tuned, pairs)]
    t4 = time.perf_counter()
    out |= {"engine_s": t4 - t3, "load_engine": load_average()}
    log.info("phase done: engine %.1f s [load %s]", t4 - t3, load_average())  # as it goes: a long run may be cut
    fast = [v for v, _ in forward]
    tokens = [n for _, n in forward]
    out |= {"per_token_diff": max(abs(a - b) / n for a, b, n in zip(fast, engine, tokens, strict=True)),
            "margin_diff": max(abs(a - b) for a, b in zip(margins(fast), margins(engine), strict=True)),
            "same_preference": sum((a > 0) == (b > 0) for a, b in zip(margins(fast), margins(engine), strict=True)),
            "warm_diff": max(abs(a[0] - b[0]) for a, b in zip(forward, again, strict=True)),
            "wins": sum(a.outcome for a in answered), "tuned_degenerate": mine.report.rate,
            "base_degenerate": theirs.report.rate, "example": mine.texts[0][:80]}
    if old_pairs:
        subset = pairs[:old_pairs]
        t5 = time.perf_counter()
        spread = [*await scored(base, subset, "spread"), *await scored(tuned, subset, "spread")]
        t6 = time.perf_counter()
        old = [*await scored(base, subset, "per-token"), *await scored(tuned, subset, "per-token")]
        out |= {"subset_spread_s": t6 - t5, "subset_old_s": time.perf_counter() - t6,
                "max_diff_spread": max(abs(a - b) for a, b in zip(spread, old, strict=True)),
                "max_diff": max(abs(a - b) for a, b in zip(engine[:2 * old_pairs], old, strict=True))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--slots", type=int, default=None, help="the engine's slots (default: the platform's)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--old-pairs", type=int, default=0,
                    help="pairs the per-token engine paths are timed on as well (default 0: left out)")
    args = ap.parse_args()
    log_to_stdout()
    with tempfile.TemporaryDirectory(prefix="qfnb-compare-speed-") as tmp:
        root = Path(tmp)
        lora = adapter_dir(root)
        # generous watchdog limits: on a loaded shared machine a request may wait minutes for the CPU
        options = EngineOptions(idle_seconds=1800, stall_seconds=300, request_seconds=1800)
        if args.slots is not None:
            options = dataclasses.replace(options, slots=args.slots)
        registry = EngineRegistry(root / "data", options=options)
        try:
            registry.register_adapter("gemma-tuned", GEMMA, lora)
            tuned, base = registry.chat("gemma-tuned"), registry.chat(GEMMA)
            assert isinstance(tuned, LlamaEngine) and isinstance(base, LlamaEngine)
            tuned_scorer, base_scorer = registry.forward_scorer("gemma-tuned"), registry.forward_scorer(GEMMA)
            assert tuned_scorer is not None and base_scorer is not None, "no transformers weights of Gemma-3-270M"
            pairs = held_out(args.pairs)
            asyncio.run(scored(base, pairs[:1]))  # the engine started and the adapter loaded: not timed
            asyncio.run(scored(tuned, pairs[:1]))
            before = load_average()
            old_pairs = min(args.old_pairs, args.pairs)
            got = asyncio.run(compare(tuned, base, (base_scorer, tuned_scorer), pairs, args.max_tokens, old_pairs))
        finally:
            registry.close()
    answers = 2 * args.pairs
    log.info("%d held-out pairs, Gemma-3-270M + a LoRA adapter against the base, %d slots, max_tokens %d; "
             "load average before: %s", args.pairs, base.gate.slots, args.max_tokens, before)
    log.info("answers (the verdict): %.1f s, both models, %d prompts each [load then: %s]", got["answers_s"],
             args.pairs, got["load_answers"])
    log.info("likelihood NEW (forward pass, %d answers under each model): %.1f s cold (the weights loaded) "
             "[load %s], %.1f s warm [load %s]", answers, got["forward_cold_s"], got["load_forward"],
             got["forward_warm_s"], got["load_forward_warm"])
    log.info("likelihood OLD (engine, %d answers at once, one call an answer): %.1f s [load %s]",
             answers_at_once(base), got["engine_s"], got["load_engine"])
    log.info("old / new: %.1fx cold, %.1fx warm", got["engine_s"] / max(got["forward_cold_s"], 1e-9),
             got["engine_s"] / max(got["forward_warm_s"], 1e-9))
    log.info("whole comparison: new %.1f s (answers + cold forward), old %.1f s (answers + engine): %.1fx",
             got["answers_s"] + got["forward_cold_s"], got["answers_s"] + got["engine_s"],
             (got["answers_s"] + got["engine_s"]) / max(got["answers_s"] + got["forward_cold_s"], 1e-9))
    log.info("forward against engine: largest difference %.3f nats a token (tolerance %.2f), largest margin "
             "difference %.3f nats, the same preferred answer on %d of %d pairs per model; warm against cold %.2g",
             got["per_token_diff"], AGREEMENT_PER_TOKEN, got["margin_diff"], got["same_preference"], 2 * args.pairs,
             got["warm_diff"])
    if "subset_old_s" in got:
        log.info("likelihood of the first %d pairs a call per token: spread over the slots %.1f s; one slot, one "
                 "answer after another %.1f s; largest summed difference from one call an answer: %.2g (spread "
                 "%.2g)", old_pairs, got["subset_spread_s"], got["subset_old_s"], got["max_diff"],
                 got["max_diff_spread"])
    log.info("answers: tuned degenerate %.0f%%, base %.0f%%; tuned won %.1f of %d by resemblance; e.g. %r",
             100 * got["tuned_degenerate"], 100 * got["base_degenerate"], got["wins"], args.pairs, got["example"])
    log.info("load average after: %s", load_average())


if __name__ == "__main__":
    main()

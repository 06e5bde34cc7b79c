"""How long comparing a tuned Gemma-3-270M with its base on held-out pairs takes, against the old path.

    .venv/bin/python bench/compare_speed.py [--pairs 10] [--slots N] [--max-tokens 128] [--old-pairs N]

Serves Gemma-3-270M on the real llama-server and a LoRA adapter of it beside it (random weights: the
time does not depend on what it learnt), then, on ``--pairs`` held-out support pairs:

1. **now** (what ``compare_preference`` does on the engine): both models answer every held-out prompt
   greedily, all prompts at once (the engine batches them in its slots), one model after the other; the
   answers are read for degeneration and decided (:func:`qfnb.evaluation.runs.preference_answers.judge_answers_of`);
   then the likelihood line: each pair's preferred and rejected answer scored under both models, four
   answers at once, each answer in one ``/completion`` (``LlamaEngine.answer_token_logprobs``: its
   tokens generated under a grammar of their ids);
2. **before** (the same run, on the first ``--old-pairs`` pairs, beside the new path on those pairs): the
   likelihood scoring as it was, four answers at once, one ``/completion`` per token, each answer's
   tokens spread over the engine's batch slots (``token_logprobs``); and **old**: one answer after
   another, one ``/completion`` per token on one slot (``token_logprobs(spans=1)``).

Prints each phase's seconds, the engine calls, the load average before and after, and the largest
difference between the two paths' log-probabilities (they must agree).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import load_average, log_to_stdout
from engine_asks import chat_ask

from qfnb.evaluation.runs.preference_answers import Answers, judge_answers_of
from qfnb.local.domain.training.answer_scores import answers_at_once
from qfnb.local.engines import GEMMA
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


async def compare(tuned: LlamaEngine, base: LlamaEngine, pairs: Sequence[train_formats.Pair], max_tokens: int,
                  old_pairs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    mine = await answers_of(tuned, pairs, max_tokens)
    theirs = await answers_of(base, pairs, max_tokens)
    answered = await judge_answers_of(pairs, mine, theirs, None, None)
    t1 = time.perf_counter()
    now = [*await scored(base, pairs), *await scored(tuned, pairs)]
    t2 = time.perf_counter()
    four = [*await scored(base, pairs, at_once_n=4), *await scored(tuned, pairs, at_once_n=4)]
    t2b = time.perf_counter()
    out: dict[str, Any] = {"answers_s": t1 - t0, "likelihood_s": t2 - t1, "now_s": t2 - t0,
                           "likelihood_four_s": t2b - t2, "load_after_now": load_average(),
                           "four_diff": max(abs(a - b) for a, b in zip(now, four, strict=True)),
                           "wins": sum(a.outcome for a in answered), "tuned_degenerate": mine.report.rate,
                           "base_degenerate": theirs.report.rate, "example": mine.texts[0][:80]}
    if old_pairs:
        subset = pairs[:old_pairs]
        t3 = time.perf_counter()
        again = [*await scored(base, subset), *await scored(tuned, subset)]
        t4 = time.perf_counter()
        spread = [*await scored(base, subset, "spread"), *await scored(tuned, subset, "spread")]
        t5 = time.perf_counter()
        old = [*await scored(base, subset, "per-token"), *await scored(tuned, subset, "per-token")]
        out |= {"subset_new_s": t4 - t3, "subset_spread_s": t5 - t4, "subset_old_s": time.perf_counter() - t5,
                "max_diff": max(abs(a - b) for a, b in zip(again, old, strict=True)),
                "max_diff_spread": max(abs(a - b) for a, b in zip(spread, old, strict=True))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--slots", type=int, default=None, help="the engine's slots (default: the platform's)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--old-pairs", type=int, default=None,
                    help="pairs the old per-token path is timed on, beside the new path on the same pairs "
                         "(default: all; 0 leaves it out)")
    args = ap.parse_args()
    log_to_stdout()
    with tempfile.TemporaryDirectory(prefix="qfnb-compare-speed-") as tmp:
        root = Path(tmp)
        lora = adapter_dir(root)
        options = EngineOptions(idle_seconds=900) if args.slots is None else EngineOptions(slots=args.slots,
                                                                                            idle_seconds=900)
        registry = EngineRegistry(root / "data", options=options)
        try:
            registry.register_adapter("gemma-tuned", GEMMA, lora)
            tuned, base = registry.chat("gemma-tuned"), registry.chat(GEMMA)
            assert isinstance(tuned, LlamaEngine) and isinstance(base, LlamaEngine)
            pairs = held_out(args.pairs)
            asyncio.run(scored(base, pairs[:1]))  # the engine started and the adapter loaded: not timed
            asyncio.run(scored(tuned, pairs[:1]))
            before = load_average()
            old_pairs = args.pairs if args.old_pairs is None else min(args.old_pairs, args.pairs)
            got = asyncio.run(compare(tuned, base, pairs, args.max_tokens, old_pairs))
        finally:
            registry.close()
    log.info("%d held-out pairs, Gemma-3-270M + a LoRA adapter against the base, %d slots, max_tokens %d",
             args.pairs, base.gate.slots, args.max_tokens)
    log.info("now: %.1f s in all (answers %.1f s: both models, %d prompts each; likelihood %.1f s, %d answers at "
             "once) [load then: %s]", got["now_s"], got["answers_s"], args.pairs, got["likelihood_s"],
             answers_at_once(base), got["load_after_now"])
    log.info("the likelihood again, same run, four answers at once (as before): %.1f s (%.2fx the new); largest "
             "summed log-probability difference %.2g", got["likelihood_four_s"],
             got["likelihood_four_s"] / max(got["likelihood_s"], 1e-9), got["four_diff"])
    if "subset_old_s" in got:
        log.info("likelihood of the first %d pairs, same run: one call an answer %.1f s; a call a token spread over "
                 "the slots %.1f s; old per-token path (one answer after another, one slot) %.1f s: %.1fx; "
                 "largest summed log-probability difference from the old path: one-call %.2g, spread %.2g",
                 old_pairs, got["subset_new_s"], got["subset_spread_s"], got["subset_old_s"],
                 got["subset_old_s"] / max(got["subset_new_s"], 1e-9), got["max_diff"], got["max_diff_spread"])
    log.info("answers: tuned degenerate %.0f%%, base %.0f%%; tuned won %.1f of %d by resemblance; e.g. %r",
             100 * got["tuned_degenerate"], 100 * got["base_degenerate"], got["wins"], args.pairs, got["example"])
    log.info("load average before: %s, after: %s", before, load_average())


if __name__ == "__main__":
    main()

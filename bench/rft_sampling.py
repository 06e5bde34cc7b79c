"""One RFT draw's sampling on the default fine-tune base (Gemma-3-270M, with a fresh LoRA as the worker wraps
it), the way of round 32 beside today's:

    .venv/bin/python bench/rft_sampling.py [--prompts 4] [--group 4] [--new-tokens 48] [--reps 3]

- before: one left-padded ``generate`` of prompts x group rows with its own sampling (``do_sample``, ``top_k`` and
  ``top_p``: warpers that sort, and a draw over, the whole vocabulary each token) on one torch thread;
- now: :meth:`~qfnb.local.training.policy.Policy.sample` (the draw over the top k,
  :class:`~qfnb.local.training.policy._Draw`, on the worker's :data:`~qfnb.local.training.lora.N_THREADS` threads).

The prompts are the first ``--prompts`` of ``bench/data/support_preferences_en.json``'s train set, chat-templated
as the worker encodes them, sampled at RFT's default temperature, each arm seeded alike, the arms interleaved
``--reps`` times. Median seconds of each, their ratio and the tokens sampled are printed, with the load average
(``/proc/loadavg``) before and after: the figures vary with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import log_to_stdout  # noqa: E402

log = logging.getLogger("bench.rft_sampling")

ARMS = ("before", "now")


def support_prompts(count: int) -> list[str]:
    """The first ``count`` training prompts of the English support preference set."""
    rows = json.loads((ROOT / "bench" / "data" / "support_preferences_en.json").read_text("utf-8"))["train"]
    return [str(r["prompt"]) for r in rows[:count]]


def load_policy(model_dir: Path) -> Any:
    """The model as the RFT worker trains it (:func:`qfnb.local.training.rft.train`): the base in fp32 with a fresh
    LoRA of the default hyperparameters, in training mode, wrapped as its
    :class:`~qfnb.local.training.policy.Policy`."""
    from qfnb.local.training import lora
    from qfnb.local.training.policy import Policy
    from qfnb.local.training.spec import Hyper

    model, tok = lora.load_base(model_dir)
    model = lora.with_lora(model, Hyper())
    model.train()
    return Policy(model, tok)


def time_draws(policy: Any, prompts: list[str], group: int, new_tokens: int, reps: int,
               seed: int = 0) -> dict[str, Any]:
    """Each arm's seconds per draw (``reps``, interleaved, each seeded with ``seed``), the tokens each draw sampled,
    and the medians' ratio before / now."""
    import torch

    from qfnb.local.training import answers
    from qfnb.local.training.policy import TOP_K, TOP_P
    from qfnb.local.training.spec import Hyper

    temperature = Hyper().temperature
    encoded = [policy.encode(({"role": "user", "content": p},)) for p in prompts]

    def before() -> list[list[int]]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with answers.generating(policy.model, policy.tok):
                batch = policy.tok.pad({"input_ids": [e for e in encoded for _ in range(group)]}, return_tensors="pt")
                out = policy.model.generate(**batch, max_new_tokens=new_tokens, eos_token_id=policy.end,
                                            pad_token_id=policy.tok.pad_token_id, use_cache=True, do_sample=True,
                                            temperature=temperature, top_k=TOP_K, top_p=TOP_P)
        finally:
            torch.set_num_threads(threads)
        rows = out[:, batch["input_ids"].shape[1]:].tolist()
        return [row[:next((i + 1 for i, t in enumerate(row) if t in policy.end), len(row))] for row in rows]

    def draw(arm: str) -> list[list[int]]:
        if arm == "before":
            return before()
        return [c for g in policy.sample(encoded, group, new_tokens, temperature) for c in g]

    out: dict[str, Any] = {arm: {"seconds": [], "tokens": []} for arm in ARMS}
    for rep in range(reps):
        for arm in ARMS:
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            completions = draw(arm)
            seconds = time.perf_counter() - t0
            out[arm]["seconds"].append(round(seconds, 3))
            out[arm]["tokens"].append(sum(len(c) for c in completions))
            log.info("rep %d %-6s %7.2f s  %d tokens", rep + 1, arm, seconds, out[arm]["tokens"][-1])
    for arm in ARMS:
        out[arm]["median_seconds"] = round(statistics.median(out[arm]["seconds"]), 3)
    out["ratio_before_over_now"] = round(out["before"]["median_seconds"] / out["now"]["median_seconds"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    log_to_stdout()

    from qfnb.local.engines import GEMMA
    from qfnb.local.engines.store import assets

    log.info("load before: %s", Path("/proc/loadavg").read_text().strip())
    policy = load_policy(assets.hf_dir(GEMMA))
    result = time_draws(policy, support_prompts(args.prompts), args.group, args.new_tokens, args.reps)
    log.info("load after: %s", Path("/proc/loadavg").read_text().strip())
    log.info("one draw of %d prompts x %d answers x %d new tokens: before %.2f s (median), now %.2f s; "
             "before / now = %.2f", args.prompts, args.group, args.new_tokens, result["before"]["median_seconds"],
             result["now"]["median_seconds"], result["ratio_before_over_now"])
    log.info("%s", json.dumps(result))


if __name__ == "__main__":
    main()

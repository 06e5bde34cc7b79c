"""One RFT draw's sampling on the default fine-tune base (Gemma-3-270M, with a fresh LoRA as the worker wraps
it), the old way beside the new:

    .venv/bin/python bench/rft_sampling.py [--prompts 4] [--group 4] [--new-tokens 48] [--reps 3]

- old: a ``generate`` per prompt (``--group`` rows each) on the training's :data:`~qfnb.local.training.lora.N_THREADS`
  torch threads, as :meth:`~qfnb.local.training.rft.Policy.sample` sampled before it took a draw's prompts together
  (one prompt alone is not padded, so this is the old call);
- new: one left-padded ``generate`` of prompts x group rows on
  :data:`~qfnb.local.training.answers.GENERATION_THREADS` thread (today's ``Policy.sample``).

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

ARMS = ("old", "new")


def support_prompts(count: int) -> list[str]:
    """The first ``count`` training prompts of the English support preference set."""
    rows = json.loads((ROOT / "bench" / "data" / "support_preferences_en.json").read_text("utf-8"))["train"]
    return [str(r["prompt"]) for r in rows[:count]]


def load_policy(model_dir: Path) -> Any:
    """The model as the RFT worker trains it (:func:`qfnb.local.training.rft.train`): the base in fp32 with a fresh
    LoRA of the default hyperparameters, in training mode, wrapped as its :class:`~qfnb.local.training.rft.Policy`."""
    from qfnb.local.training import lora, rft
    from qfnb.local.training.spec import Hyper

    model, tok = lora.load_base(model_dir)
    model = lora.with_lora(model, Hyper())
    model.train()
    return rft.Policy(model, tok)


def time_draws(policy: Any, prompts: list[str], group: int, new_tokens: int, reps: int,
               seed: int = 0) -> dict[str, Any]:
    """Each arm's seconds per draw (``reps``, interleaved, each seeded with ``seed``), the tokens each draw sampled,
    the ``generate`` calls a draw made, and the medians' ratio old / new."""
    import torch

    from qfnb.local.training import lora, rft
    from qfnb.local.training.spec import Hyper

    temperature = Hyper().temperature
    encoded = [policy.encode(rft.RftPrompt(({"role": "user", "content": p},), p, {})) for p in prompts]
    old = rft.Policy(policy.model, policy.tok, threads=lora.N_THREADS)
    calls = 0
    generate = policy.model.generate

    def counted(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return generate(**kwargs)

    def draw(arm: str) -> list[list[list[int]]]:
        if arm == "old":
            return [old.sample([e], group, new_tokens, temperature)[0] for e in encoded]
        return list(policy.sample(encoded, group, new_tokens, temperature))

    policy.model.generate = counted
    out: dict[str, Any] = {arm: {"seconds": [], "tokens": [], "generate_calls": 0} for arm in ARMS}
    try:
        for rep in range(reps):
            for arm in ARMS:
                torch.manual_seed(seed)
                calls, t0 = 0, time.perf_counter()
                groups = draw(arm)
                seconds = time.perf_counter() - t0
                out[arm]["seconds"].append(round(seconds, 3))
                out[arm]["tokens"].append(sum(len(c) for g in groups for c in g))
                out[arm]["generate_calls"] = calls
                log.info("rep %d %-3s %7.2f s  %d tokens, %d generate call(s)", rep + 1, arm, seconds,
                         out[arm]["tokens"][-1], calls)
    finally:
        del policy.model.generate  # the model's own method again
    for arm in ARMS:
        out[arm]["median_seconds"] = round(statistics.median(out[arm]["seconds"]), 3)
    out["ratio_old_over_new"] = round(out["old"]["median_seconds"] / out["new"]["median_seconds"], 2)
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
    log.info("one draw of %d prompts x %d answers x %d new tokens: old %.2f s (median), new %.2f s; "
             "old / new = %.2f", args.prompts, args.group, args.new_tokens, result["old"]["median_seconds"],
             result["new"]["median_seconds"], result["ratio_old_over_new"])
    log.info("%s", json.dumps(result))


if __name__ == "__main__":
    main()

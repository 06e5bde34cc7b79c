"""Reinforcement fine-tuning (RFT, GRPO) on the default fine-tune base (Gemma-3-270M), on this machine's CPU:

    .venv/bin/python bench/rft_step.py [--rounds 3] [--steps 12] [--timing-only]

1. Seconds per step of RFT beside SFT's, measured in one run (the two alternate within each round, medians
   reported): SFT on 4 prompt/answer pairs; RFT on 2 prompts, 4 sampled answers each of at most 16 new
   tokens (scored by a declarative grader, so no reward round trip is timed), the reference's forward pass
   and the GRPO loss.
2. A real RFT run through the training worker (``--steps``, ``--batch`` prompts a step, 4 answers each of at
   most ``--new-tokens``; 3 held-out prompts) with a Python reward that counts a keyword: each prompt
   names a thing ("apples"), the reward is how often the answer says it (at most 3 times, scaled to 0..1).
   The reward is scored outside the worker, as the platform's reward client does (a thread that answers
   the worker's reward requests by calling the function). The reward's moving mean at the first and the
   last step, the held-out prompts' mean reward of the base and of the best checkpoint are printed.

Figures vary with the machine's load: it is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import load_average, log_to_stdout  # noqa: E402

log = logging.getLogger("bench.rft_step")

_THINGS = ["apples", "pears", "coins", "stones", "birds", "boats", "cups", "books", "keys", "shells"]


def prompt(i: int) -> dict[str, str]:
    """An arithmetic question about a thing, with the thing as the reward's keyword."""
    a, b, thing = 2 + i % 7, 3 + (i * 5) % 9, _THINGS[i % len(_THINGS)]
    return {"prompt": f"I have {a} {thing} and get {b} more. How many {thing} do I have?", "keyword": thing}


def keyword_reward(prompt: str, completion: str, keyword: str = "", **kw: Any) -> float:
    """How often the answer names the keyword: 0, 1/3, 2/3 or 1 (three times or more)."""
    return min(completion.lower().count(keyword.lower()), 3) / 3


def timing(model_dir: Path, rounds: int) -> dict[str, float]:
    """Median seconds per step of SFT and RFT, alternating within each round."""
    import torch

    from qfnb.local.training import data, lora, rft
    from qfnb.local.training.policy import Policy
    from qfnb.local.training.rewards import RewardExchange
    from qfnb.local.training.spec import Hyper, WorkerSpec
    from qfnb.protocol.console.rewards import parse_reward

    hyper = Hyper(batch_size=2, max_seq_len=96, learning_rate=1e-4, group_size=4, max_new_tokens=16)
    base, tok = lora.load_base(model_dir)
    model = lora.add_lora(base, hyper)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    rows = [prompt(i) for i in range(32)]
    sft = data.encode_all(tok, [data.Example(({"role": "user", "content": r["prompt"]},), f"You have 5 {r['keyword']}.")
                                for r in rows], 96)
    grader = parse_reward({"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.keyword}}",
                           "operation": "ilike"})
    with tempfile.TemporaryDirectory() as tmp:
        spec = WorkerSpec("Gemma-3-270M", Path(tmp) / "train.jsonl", hyper, train_mode="RFT", reward=grader)
        prompts = [rft.RftPrompt(({"role": "user", "content": r["prompt"]},), r["prompt"], {"keyword": r["keyword"]})
                   for r in rows]
        trainer = rft.GroupTrainer(Path(tmp), spec, _Never(), Policy(model, tok), optimizer, prompts, [],
                                   RewardExchange(Path(tmp), grader))
        run = rft._Run()

        def step(name: str, k: int) -> None:
            if name == "SFT":
                lora.train_step(model, optimizer, data.collate([sft[(4 * k + j) % len(sft)] for j in range(4)],
                                                               tok.pad_token_id))
            else:
                trainer.step(run, [(2 * k + j) % len(prompts) for j in range(2)])

        for name in ("SFT", "RFT"):  # warm-up
            step(name, 0)
        secs: dict[str, list[float]] = {"SFT": [], "RFT": []}
        for r in range(rounds):
            for name in secs:
                t0 = time.perf_counter()
                step(name, r + 1)
                secs[name].append(time.perf_counter() - t0)
                log.info("round %d %-4s %.2f s", r + 1, name, secs[name][-1])
    return {k: statistics.median(v) for k, v in secs.items()}


class _Never:
    requested = False


def _reward_client(folder: Path, stop: threading.Event) -> None:
    """What the platform's routes and the user's process do together: answer each reward request."""
    from qfnb.local.training import rewards

    while not stop.is_set():
        for path in sorted(folder.glob("request-*.json")) if folder.exists() else []:
            req = json.loads(path.read_text(encoding="utf-8"))
            rewards.claimed_path(folder, req["requestId"]).touch()
            scores = [keyword_reward(s["prompt"], s["completion"], **s["fields"]) for s in req["samples"]]
            rewards.answer_path(folder, req["requestId"]).write_text(json.dumps({"rewards": scores}), "utf-8")
            path.unlink()
        time.sleep(0.05)


def rft_check(model_dir: Path, root: Path, steps: int, batch: int = 2, new_tokens: int = 16,
              lr: float = 5e-4) -> dict[str, Any]:
    from qfnb.local.training.process import worker

    job = root / "job-RFT"
    job.mkdir(parents=True)
    for name, rows in (("train", [prompt(i) for i in range(40)]), ("eval", [prompt(i) for i in range(100, 103)])):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "Gemma-3-270M", "base_model_path": str(model_dir), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "train_mode": "RFT", "seed": 7, "reward": {"source": "client"},
        "hyper": {"maxSteps": steps, "batchSize": batch, "groupSize": 4, "maxNewTokens": new_tokens,
                  "learningRate": lr, "checkpoints": 1, "evalMetricItems": 3, "klCoef": 0.04}}), "utf-8")
    stop = threading.Event()
    client = threading.Thread(target=_reward_client, args=(job / "rewards", stop), daemon=True)
    client.start()
    try:
        result = worker.run(job)
    finally:
        stop.set()
    if result["status"] != "Done":
        raise RuntimeError(f"the RFT run failed: {result['error']}")
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    steps_seen = [p for p in lines if "reward" in p]
    for p in steps_seen:
        log.info("step %3d: reward %.3f, moving mean %.3f, KL %.4f", p["step"], p["reward"], p["reward_mean"], p["kl"])
    m = result["metrics"]
    return {"first_mean": steps_seen[0]["reward_mean"], "last_mean": steps_seen[-1]["reward_mean"],
            "steps": m["steps"], "seconds_per_step": m["seconds_per_step"], "base_eval": m.get("base_eval_reward"),
            "best_eval": m.get("best_eval_reward"), "best": m.get("best_checkpoint"),
            "sampled_tokens": m["sampled_tokens"], "train_seconds": m["train_seconds"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--batch", type=int, default=2, help="prompts a step of the keyword run")
    ap.add_argument("--new-tokens", type=int, default=16, help="the keyword run's longest answer")
    ap.add_argument("--lr", type=float, default=5e-4, help="the keyword run's learning rate")
    args = ap.parse_args()
    log_to_stdout()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qfnb.local.engines import GEMMA
    from qfnb.local.engines.store import assets

    model_dir = assets.hf_dir(GEMMA)
    log.info("load average at start: %s", load_average())
    if not args.check_only:
        secs = timing(model_dir, args.rounds)
        log.info("SFT %.2f s/step (4 pairs) · RFT %.2f s/step (2 prompts x 4 answers of <= 16 tokens): %.1fx SFT",
                 secs["SFT"], secs["RFT"], secs["RFT"] / secs["SFT"])
    if not args.timing_only:
        with tempfile.TemporaryDirectory() as tmp:
            out = rft_check(model_dir, Path(tmp), args.steps, args.batch, args.new_tokens, args.lr)
        log.info("RFT keyword reward: moving mean %.3f at step 1 -> %.3f at step %d (%.1f s/step, %d sampled tokens, "
                 "%.0f s training); held-out mean reward: base %s, best checkpoint (step %s) %s",
                 out["first_mean"], out["last_mean"], out["steps"], out["seconds_per_step"], out["sampled_tokens"],
                 out["train_seconds"], out["base_eval"], out["best"], out["best_eval"])
    log.info("load average at end: %s", load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())

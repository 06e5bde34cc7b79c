"""The train modes on the default fine-tune base (Gemma-3-270M), on this machine's CPU:

    .venv/bin/python bench/train_modes.py [--rounds 3] [--dpo-steps 12] [--dpo-lr 2e-3] [--pretrain-steps 6]
                                          [--parts timing,dpo,pretrain]

1. Seconds per step of SFT, PostPretrain, DPO and KTO, measured in one run (rounds alternate between the
   modes, medians reported), with each mode's ratio to SFT's. The same prompts and answers feed every mode
   (batch 4): SFT learns the preferred answers, DPO takes the pairs (twice the sequences, plus the
   reference's forward pass the first time a pair is drawn), KTO the answers one by one (plus its
   no-gradient KL estimate), PostPretrain the answers' text packed into blocks.
2. A real DPO run through the training worker on a toy preference: answers that end with the word
   "Aye!" are preferred. Its checkpoints' held-out preference accuracy is printed; then base and tuned
   answer prompts neither saw (greedy, new numbers and new kinds of question), and the share of answers
   with "Aye!" is counted for each.
3. A real PostPretrain run on this repo's docs: held-out perplexity on another doc, before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import load_average, log_to_stdout  # noqa: E402

log = logging.getLogger("bench.train_modes")

MARK = "Aye!"
_NAMES = ["apples", "pears", "coins", "stones", "birds", "boats", "cups", "books", "keys", "shells"]


def _question(i: int) -> tuple[str, str]:
    """An arithmetic question and its plain answer (``i`` picks the numbers and the objects)."""
    a, b, thing = 2 + i % 7, 3 + (i * 5) % 9, _NAMES[i % len(_NAMES)]
    return f"I have {a} {thing} and get {b} more. How many {thing} do I have?", f"You have {a + b} {thing}."


#: unseen kinds of prompts too: the preference must carry over, not only to new numbers
UNSEEN = ["What colour is the sky on a clear day?", "Name a fruit that is yellow.", "What is the capital of France?",
          "How many legs does a spider have?", "What do bees make?", "Which season comes after winter?",
          "What is frozen water called?", "Name an animal that can fly.", "What do cows drink?",
          "How many days are in a week?"]


def pairs(indices: range) -> list[dict[str, str]]:
    out = []
    for i in indices:
        q, a = _question(i)
        out.append({"prompt": q, "chosen": f"{a} {MARK}", "rejected": a})
    return out


def timing(model_dir: Path, rounds: int) -> dict[str, float]:
    """Median seconds per step of each mode, the modes alternating within each round."""
    import torch

    from qfnb.local.training import lora, modes
    from qfnb.local.training.spec import Hyper, WorkerSpec
    from qfnb.protocol.console import train_formats

    hyper = Hyper(batch_size=4, max_seq_len=96, learning_rate=1e-4)
    base, tok = lora.load_base(model_dir)
    model = lora.add_lora(base, hyper)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    data = pairs(range(64))
    records: dict[str, list[Any]] = {
        "DPO": [r for d in data for r in train_formats.parse_item("DPO", d, "pair")],
        "KTO": [r for d in data for r in train_formats.parse_item("KTO", d, "pair")],
        "PostPretrain": [train_formats.Text(f"{d['prompt']} {d['chosen']}") for d in data],
    }
    from qfnb.local.training import data as sft_data

    runs: dict[str, tuple[Any, list[Any]]] = {}
    for name in ("SFT", "PostPretrain", "DPO", "KTO"):
        mode = modes.mode_for(WorkerSpec("Gemma", Path("-"), hyper, train_mode=name))
        mode.start(model, tok, hyper)
        sft = [sft_data.Example(({"role": "user", "content": d["prompt"]},), d["chosen"]) for d in data]
        encoded = mode.encode(tok, sft if name == "SFT" else records[name], hyper)
        runs[name] = (mode, encoded)

    def step(name: str, k: int) -> None:
        mode, rows = runs[name]
        batch = mode.batch(model, [rows[(4 * k + j) % len(rows)] for j in range(4)])
        lora.train_step(model, optimizer, batch, loss_fn=lambda *b: mode.loss(model, *b))

    for name in runs:  # warm-up
        step(name, 0)
    secs: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(rounds):
        for name in runs:
            t0 = time.perf_counter()
            step(name, r + 1)  # each round draws new rows: DPO/KTO pay their reference pass as a real run does
            secs[name].append(time.perf_counter() - t0)
            log.info("round %d %-12s %.2f s", r + 1, name, secs[name][-1])
    return {k: statistics.median(v) for k, v in secs.items()}


def _job(root: Path, model_dir: Path, mode: str, train: list[Any], held: list[Any], **hyper: Any) -> Path:
    job = root / f"job-{mode}"
    job.mkdir(parents=True)
    for name, rows in (("train", train), ("eval", held)):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "Gemma-3-270M", "base_model_path": str(model_dir), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "train_mode": mode, "seed": 7, "hyper": hyper}), "utf-8")
    return job


def _answers(model_dir: Path, adapter: Path | None, prompts: list[str]) -> list[str]:
    import torch

    from qfnb.local.training import lora

    model, tok = lora.load_base(model_dir)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    end = [t for t in {tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")} if isinstance(t, int)]
    out = []
    with torch.no_grad():
        for p in prompts:
            text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False, return_tensors="pt")
            gen = model.generate(**ids, max_new_tokens=24, do_sample=False, eos_token_id=end,
                                 pad_token_id=tok.pad_token_id)
            out.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return out


def dpo_check(model_dir: Path, root: Path, steps: int, lr: float) -> dict[str, Any]:
    from qfnb.local.training.process import worker

    job = _job(root, model_dir, "DPO", pairs(range(0, 48)), pairs(range(100, 108)), maxSteps=steps, batchSize=2,
               learningRate=lr, maxSeqLen=64, checkpoints=3, beta=0.1)
    result = worker.run(job)
    if result["status"] != "Done":
        raise RuntimeError(f"the DPO run failed: {result['error']}")
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    saved = [p["checkpoint"] for p in lines if "checkpoint" in p]
    for c in saved:
        log.info("DPO checkpoint step %3d: held-out preference accuracy %.3f, reward margin %+.3f, eval loss %.3f",
                 c["step"], c["valid_preference_accuracy"], c["valid_reward_margin"], c["evalLoss"])
    best = result["metrics"]["best_checkpoint"]
    adapter = next(Path(c["path"]) for c in saved if c["step"] == best)
    unseen = [_question(i)[0] for i in range(200, 206)] + UNSEEN[:6]  # new numbers, and new kinds of question
    base = _answers(model_dir, None, unseen)
    tuned = _answers(model_dir, adapter, unseen)
    for p, b, t in list(zip(unseen, base, tuned, strict=True))[::5]:
        log.info("  %s\n    base : %s\n    tuned: %s", p, b, t)

    def rate(answers: list[str]) -> float:  # an answer cut at 24 tokens may not reach its end: "with", not "ends"
        return sum(MARK in a for a in answers) / len(answers)

    return {"checkpoints": saved, "best": best, "base_rate": rate(base), "tuned_rate": rate(tuned),
            "unseen": len(unseen), "seconds_per_step": result["metrics"]["seconds_per_step"],
            "train_seconds": result["metrics"]["train_seconds"]}


def pretrain_check(model_dir: Path, root: Path, steps: int) -> dict[str, Any]:
    from qfnb.local.training.process import worker

    def texts(name: str) -> list[dict[str, str]]:
        body = (ROOT / "docs" / name).read_text(encoding="utf-8")
        return [{"text": p.strip()} for p in re.split(r"\n\s*\n", body) if len(p.strip()) > 80]

    train = texts("architecture.md") + texts("lifecycle.md")
    held = texts("local-platform.md")[:24] if (ROOT / "docs" / "local-platform.md").is_file() else train[-12:]
    job = _job(root, model_dir, "PostPretrain", train, held, maxSteps=steps, batchSize=2, learningRate=1e-3,
               maxSeqLen=64, checkpoints=2)
    result = worker.run(job)
    if result["status"] != "Done":
        raise RuntimeError(f"the PostPretrain run failed: {result['error']}")
    m = result["metrics"]
    return {"base_ppl": m["base_valid_perplexity"], "tuned_ppl": m["valid_perplexity"],
            "seconds_per_step": m["seconds_per_step"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dpo-steps", type=int, default=12)
    ap.add_argument("--dpo-lr", type=float, default=2e-3)
    ap.add_argument("--pretrain-steps", type=int, default=6)
    ap.add_argument("--parts", default="timing,dpo,pretrain", help="which parts to run (comma-separated)")
    args = ap.parse_args()
    log_to_stdout()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qfnb.local.engines import GEMMA
    from qfnb.local.engines.store import assets

    model_dir = assets.hf_dir(GEMMA)
    log.info("load average at start: %s", load_average())
    parts = set(args.parts.split(","))
    if "timing" in parts:
        secs = timing(model_dir, args.rounds)
        for name, s in secs.items():
            log.info("%-12s %.2f s/step  (%.2fx SFT)", name, s, s / secs["SFT"])
    with tempfile.TemporaryDirectory() as tmp:
        if "dpo" in parts:
            dpo = dpo_check(model_dir, Path(tmp), args.dpo_steps, args.dpo_lr)
            log.info("DPO: best checkpoint step %d; answers with %r on %d unseen prompts: base %.0f%%, "
                     "tuned %.0f%%  (%.2f s/step, %.0f s training)", dpo["best"], MARK, dpo["unseen"],
                     100 * dpo["base_rate"], 100 * dpo["tuned_rate"], dpo["seconds_per_step"], dpo["train_seconds"])
        if "pretrain" in parts:
            pre = pretrain_check(model_dir, Path(tmp), args.pretrain_steps)
            log.info("PostPretrain: held-out perplexity %.2f -> %.2f  (%.2f s/step)", pre["base_ppl"],
                     pre["tuned_ppl"], pre["seconds_per_step"])
    log.info("load average at end: %s", load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The fine-tuning demo, measured: 30 LoRA steps of Gemma-3-270M on the 60-pair demo set, before/after answers.

    .venv/bin/python bench/lora_demo.py [--steps 30] [--data-dir ~/.qfnb]

Runs the real worker (``python -m qfnb.local.training.process.worker``) in a subprocess, then serves the
adapter through the engine registry (llama.cpp + LoRA GGUF when available) and prints the held-out
questions' answers from the base model and from the tuned one, plus the peft (transformers) answers
of the same adapter as a cross-check of the GGUF export.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qfnb.local.engines import GEMMA, EngineRegistry, ModelSpec
from qfnb.local.engines.api import generate_blocking
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.store import assets
from qfnb.local.training.demo import DEMO_FILE, HELD_OUT

log = logging.getLogger("bench.lora_demo")
GREEDY = Sampling(temperature=0.0, max_tokens=40)


def answers(reg: EngineRegistry, endpoint: str) -> list[str]:
    engine = reg.chat(endpoint)
    return [
        "".join(d.text for d in generate_blocking(engine, ChatAsk(model=endpoint, messages=(
            {"role": "user", "content": q},), sampling=GREEDY)))
        for q in HELD_OUT
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("QFNB_DATA_DIR") or Path.home() / ".qfnb"))
    ap.add_argument("--job-dir", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="skip training: use the finished job in --job-dir")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    job = args.job_dir or Path(tempfile.mkdtemp(prefix="qfnb-demo-"))
    job.mkdir(parents=True, exist_ok=True)
    spec = {
        "base_model": GEMMA,
        "train_file": str(DEMO_FILE),
        "data_dir": str(args.data_dir),
        "seed": 42,
        "hyper": {
            "epoch": 2,
            "learningRate": args.lr,
            "batchSize": 4,
            "maxSeqLen": 128,
            "loraRank": 16,
            "loraAlpha": 32,
            "loraDropout": 0.0,
            "maxSteps": args.steps,
        },
    }
    if not args.reuse:
        (job / "spec.json").write_text(json.dumps(spec))

    reg = EngineRegistry(args.data_dir)
    before = answers(reg, GEMMA)

    t0 = time.time()
    rc = 0
    if not args.reuse:
        rc = subprocess.run([sys.executable, "-m", "qfnb.local.training.process.worker", str(job)],
                            check=False).returncode
    wall = time.time() - t0
    result = json.loads((job / "result.json").read_text())
    if result["status"] != "Done":
        log.error("training failed: %s", result)
        return 1
    m = result["metrics"]
    losses = [json.loads(x)["loss"] for x in (job / "progress.jsonl").read_text().splitlines()]
    log.info(
        "worker rc=%s wall %.1f s: load %.1f s, train %.1f s, %.2f s/step over %d steps",
        rc,
        wall,
        m["load_seconds"],
        m["train_seconds"],
        m["seconds_per_step"],
        m["steps"],
    )
    log.info("loss: first %.3f, last five %s", losses[0], [round(x, 3) for x in losses[-5:]])

    adapter = Path(result["adapter_dir"])
    reg.register_adapter("demo_tuned", GEMMA, adapter)
    tuned = answers(reg, "demo_tuned")
    hf = EngineRegistry(
        args.data_dir,
        {
            "gemma-hf": ModelSpec(
                kind="transformers", template="gemma", stop=("<end_of_turn>",), path=assets.hf_dir(GEMMA, args.data_dir)
            )
        },
    )
    hf.register_adapter("demo_peft", "gemma-hf", adapter)
    peft_answers = answers(hf, "demo_peft")
    served_kind = reg.resolve("chat", "demo_tuned").kind
    for q, b, t, p in zip(HELD_OUT, before, tuned, peft_answers, strict=True):
        log.info("Q: %s\n  base:            %r\n  tuned (%s): %r\n  tuned (peft):    %r", q, b, served_kind, t, p)
    return 0


if __name__ == "__main__":
    sys.exit(main())

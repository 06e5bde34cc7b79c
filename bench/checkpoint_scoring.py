"""What scoring a fine-tune's checkpoints costs against its training time, in the worker itself.

    .venv/bin/python bench/checkpoint_scoring.py [--steps 40] [--checkpoints 5] [--base tiny|gemma]

Runs the training worker twice on the same 20 help-desk pairs (16 train, 4 held out): once without
checkpoints (the baseline: training alone) and once with K checkpoints, each scored on the held-out
split (loss only: the default). Prints seconds per step of both, the scoring seconds and their share
of the training time (the target: at most 15 %). ``--base tiny`` trains a 2-layer random Gemma 3
(seconds); ``gemma`` the real Gemma-3-270M (minutes).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "local")]

from qfnb.local.training.process import worker  # noqa: E402

log = logging.getLogger("bench.checkpoint_scoring")
PAIRS = [{"prompt": f"How do I reset device {i}?", "response": f"Hold reset on device {i} for {i + 3} s, then call "
          f"desk {100 + 7 * i}."} for i in range(20)]


def run(root: Path, model: Path | None, steps: int, checkpoints: int) -> dict[str, float]:
    job = root / f"job-{checkpoints}"
    job.mkdir(parents=True)
    for name, rows in (("train", PAIRS[:16]), ("eval", PAIRS[16:])):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    spec: dict[str, object] = {"base_model": "Gemma-3-270M", "train_file": "train.jsonl", "seed": 1,
                               "hyper": {"batchSize": 4, "maxSeqLen": 64, "maxSteps": steps, "learningRate": 2e-3,
                                         "checkpoints": checkpoints}}
    if checkpoints:
        spec["eval_file"] = "eval.jsonl"
    if model is not None:
        spec["base_model_path"] = str(model)
    (job / "spec.json").write_text(json.dumps(spec))
    t0 = time.time()
    result = worker.run(job)
    if result["status"] != "Done":
        raise SystemExit(f"the worker failed: {result['error']}")
    m = result["metrics"]
    return {"wall": time.time() - t0, "train": m["train_seconds"], "per_step": m["seconds_per_step"],
            "scoring": m.get("scoring_seconds", 0.0), "share": m.get("scoring_share", 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--checkpoints", type=int, default=5)
    ap.add_argument("--base", choices=("tiny", "gemma"), default="tiny")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("qfnb", "transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = None
        if args.base == "tiny":
            from tiny_models import build_tiny_gemma

            model = build_tiny_gemma(root / "model")
        alone = run(root, model, args.steps, 0)
        scored = run(root, model, args.steps, args.checkpoints)
    log.info("%d steps, base %s: training alone %.2f s/step; with %d scored checkpoints %.2f s/step of training "
             "(ratio %.2f)", args.steps, args.base, alone["per_step"], args.checkpoints, scored["per_step"],
             scored["per_step"] / alone["per_step"])
    log.info("scoring (held-out loss + saving the adapters): %.2f s = %.1f %% of the training time (target <= 15 %%); "
             "wall %.1f s vs %.1f s", scored["scoring"], 100 * scored["share"], scored["wall"], alone["wall"])


if __name__ == "__main__":
    main()

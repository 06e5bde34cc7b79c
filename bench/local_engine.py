"""LoRA training overhead: seconds per step of the worker's ``train_step`` vs a plain peft loop.

    .venv/bin/python bench/local_engine.py [--rounds 3]

Same bf16 autocast, same batch of the demo set, Gemma-3-270M; rounds alternate between the two
and medians are reported. Serving speed (platform vs bare llama-server) is ``bench/serving.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

log = logging.getLogger("bench.local_engine")

def bench_lora(data_dir: Path, rounds: int) -> dict[str, float]:
    import torch

    from qfnb.local.engines import GEMMA
    from qfnb.local.engines.store import assets
    from qfnb.local.training import data, lora
    from qfnb.local.training.demo import DEMO_FILE
    from qfnb.local.training.spec import Hyper

    model, tok = lora.load_base(assets.hf_dir(GEMMA, data_dir))
    rows = data.encode_all(tok, data.load_examples(DEMO_FILE), 128)
    batch = data.collate(rows[:4], tok.pad_token_id)
    model = lora.add_lora(model, Hyper(lora_rank=16, lora_alpha=32))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def plain_step() -> float:
        ids, mask, labels = batch
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        return float(loss.detach())

    contenders = {"plain_peft": plain_step, "worker": lambda: lora.train_step(model, opt, batch)}
    for fn in contenders.values():
        fn()
    secs: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            secs[name].append(time.perf_counter() - t0)
            log.info("%-10s step %.2f s", name, secs[name][-1])
    return {k: statistics.median(v) for k, v in secs.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("QFNB_DATA_DIR") or Path.home() / ".qfnb"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    steps = bench_lora(args.data_dir, args.rounds)
    log.info("LoRA s/step (median): %s", {k: round(v, 2) for k, v in steps.items()})
    log.info("worker step / plain peft step = %.2f", steps["worker"] / steps["plain_peft"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

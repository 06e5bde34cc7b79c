"""The fine-tune worker process (Contract 4): ``python -m qfnb.local.training.worker <job_dir>``.

Reads ``spec.json``, runs LoRA SFT, appends one ``progress.jsonl`` line per step, saves the adapter
to ``adapter/`` and writes ``result.json`` (Done / Failed / Stopped). SIGTERM stops it cleanly
between steps; the adapter trained so far is still saved.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from qfnb.protocol.files import write_private_json

log = logging.getLogger("qfnb.local.training")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        log.info("signal %d received: stopping after the current step", signum)
        self.requested = True


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    write_private_json(path, obj)


def run(job_dir: Path, stop: _StopFlag | None = None) -> dict[str, Any]:
    """Train as ``job_dir/spec.json`` says; returns (and writes) the result."""
    stop = stop or _StopFlag()
    job_dir = Path(job_dir).resolve()
    started = time.time()
    metrics: dict[str, Any] = {}
    try:
        status, adapter = _train(job_dir, stop, metrics)
        result = {"status": status, "metrics": metrics, "adapter_dir": str(adapter), "error": None}
    except Exception as exc:  # the worker's contract is to report every failure in result.json
        log.exception("training failed")
        message = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
        result = {"status": "Failed", "metrics": metrics, "adapter_dir": None, "error": message}
    metrics["wall_seconds"] = round(time.time() - started, 3)
    _write_json(job_dir / "result.json", result)
    return result


def _train(job_dir: Path, stop: _StopFlag, metrics: dict[str, Any]) -> tuple[str, Path]:
    from qfnb.local.training import data, lora
    from qfnb.local.training.spec import load_spec

    spec = load_spec(job_dir)
    hyper = spec.hyper
    examples = data.load_examples(spec.train_file)  # fail fast on bad data, before loading torch
    import torch

    torch.manual_seed(spec.seed)
    t0 = time.time()
    _phase(job_dir, "loading the base model's weights")
    model, tok = lora.load_base(lora.base_model_dir(spec))
    _phase(job_dir, "weights loaded; tokenising the data")
    rows = data.encode_all(tok, examples, hyper.max_seq_len)
    model = lora.add_lora(model, hyper)
    model.train()
    metrics["load_seconds"] = round(time.time() - t0, 3)
    trainable = [p for p in model.parameters() if p.requires_grad]
    metrics["trainable_params"] = sum(p.numel() for p in trainable)
    metrics["examples"] = len(rows)
    optimizer = torch.optim.AdamW(trainable, lr=hyper.learning_rate, weight_decay=0.0)
    total = hyper.total_steps(len(rows))
    log.info("training %s: %d examples, %d steps", spec.base_model, len(rows), total)
    _phase(job_dir, f"data tokenised ({len(rows)} examples); training", total)

    status, step, loss, tokens = "Done", 0, float("nan"), 0
    t_train = time.time()
    with open(job_dir / "progress.jsonl", "a", encoding="utf-8") as progress:
        for epoch, idx in data.batches(len(rows), hyper.batch_size, spec.seed):
            if step >= total:
                break
            if stop.requested:
                status = "Stopped"
                break
            batch = data.collate([rows[i] for i in idx], tok.pad_token_id)
            loss = lora.train_step(model, optimizer, batch)
            step += 1
            tokens += sum(len(rows[i][0]) for i in idx)  # the tokens trained on (no padding)
            if loss != loss or loss in (float("inf"), float("-inf")):
                raise FloatingPointError(f"loss is {loss} at step {step}; lower learningRate")
            if step % hyper.logging_steps == 0 or step == total:
                line = {"step": step, "total_steps": total, "loss": round(loss, 6), "epoch": epoch, "time": time.time()}
                progress.write(json.dumps(line) + "\n")
                progress.flush()
    train_seconds = time.time() - t_train
    metrics.update(
        steps=step,
        total_steps=total,
        trained_tokens=tokens,
        final_loss=round(loss, 6) if step else None,
        train_seconds=round(train_seconds, 3),
        seconds_per_step=round(train_seconds / step, 3) if step else None,
    )
    adapter = job_dir / "adapter"
    model.save_pretrained(str(adapter))
    tok.save_pretrained(str(adapter))  # the chat template travels with the adapter
    return status, adapter


def _phase(job_dir: Path, phase: str, total: int = 0) -> None:
    """A ``progress.jsonl`` line without a loss: what the worker is doing before step 1."""
    with open(job_dir / "progress.jsonl", "a", encoding="utf-8") as progress:
        progress.write(json.dumps({"step": 0, "total_steps": total, "phase": phase, "time": time.time()}) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m qfnb.local.training.worker <job_dir>\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    result = run(Path(argv[0]), stop)
    return 0 if result["status"] in ("Done", "Stopped") else 1


if __name__ == "__main__":
    sys.exit(main())

"""A fine-tune's checkpoints served beside chats to their base model, on one llama-server engine.

    .venv/bin/python bench/checkpoint_serving.py [--streamers 2] [--tokens 48]

Gemma-3-270M with three LoRA checkpoints of one run (peft adapters with random weights, rank 16 on
every projection: serving cost does not depend on what was learnt). While ``--streamers`` threads
stream answers from the base model without pause, the bench does what the platform does on a deploy
(``register_adapter`` with the run's other checkpoints, then the first request), compares the
checkpoints (requests alternating between them and the base), and removes them (their files deleted,
as ``DeleteFineTuningTask`` does). It prints:

1. engine process starts per step (target 0), and the adapters loaded into the running process
   instead: the build's llama-server loads an adapter at runtime, so no step needs a start (one
   built without ``scripts/llama_server_lora_load.patch`` needs one for the first deploy);
2. the base streams: how many, how many failed or were cut (target 0), and the longest pause
   between two tokens, against the longest before the first deploy;
3. time to first token of a request to checkpoint B right after one to checkpoint A, against a
   request to the base model (median of ``--rounds``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import log_to_stdout  # noqa: E402

from qfnb.local.engines import GEMMA  # noqa: E402
from qfnb.local.engines.ask import Sampling, TextAsk  # noqa: E402
from qfnb.local.engines.gate import run_blocking  # noqa: E402
from qfnb.local.engines.registry import EngineRegistry  # noqa: E402
from qfnb.local.engines.store import assets  # noqa: E402

log = logging.getLogger("bench.checkpoint_serving")
PROMPT = "Question: Tell me a long story about a lighthouse keeper.\nAnswer:"


def make_checkpoints(root: Path, count: int) -> list[Path]:
    """``count`` peft LoRA adapters of Gemma-3-270M (random, distinct weights)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dirs = []
    for i in range(count):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(str(assets.hf_dir(GEMMA)), dtype=torch.float32)
        cfg = LoraConfig(r=16, lora_alpha=32, init_lora_weights=False,
                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        out = root / f"step-{8 * (i + 1)}"
        get_peft_model(model, cfg).save_pretrained(str(out))
        dirs.append(out)
    return dirs


class Streamers:
    """Threads streaming base-model answers back to back, recording each stream's token times."""

    def __init__(self, reg: EngineRegistry, count: int, tokens: int) -> None:
        self.reg, self.tokens = reg, tokens
        self.streams: list[list[float]] = []
        self.errors: list[str] = []
        self.cut = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]

    def _loop(self) -> None:
        ask = TextAsk(model="bench", prompt=PROMPT, sampling=Sampling(temperature=0.8, max_tokens=self.tokens))
        while not self._stop.is_set():
            stamps: list[float] = []
            try:
                finish = run_blocking(lambda stamps=stamps: self._one(ask, stamps))
            except Exception as exc:  # what the bench counts
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if finish not in ("length", "normal", "stop"):
                self.cut += 1
            self.streams.append(stamps)

    async def _one(self, ask: TextAsk, stamps: list[float]) -> str | None:
        last = None
        async for d in self.reg.chat(GEMMA).generate(ask):
            if d.text:
                stamps.append(time.monotonic())
            last = d.finish_reason or last
        return last

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)

    def longest_pause(self, since: float, until: float) -> float:
        gaps = [b - a for s in self.streams for a, b in itertools.pairwise(s) if since <= a and b <= until]
        return max(gaps, default=0.0)


def first_token(reg: EngineRegistry, endpoint: str) -> float:
    ask = TextAsk(model="bench", prompt="Question: What is a lighthouse?\nAnswer:",
                  sampling=Sampling(temperature=0.0001, max_tokens=4))

    async def go() -> float:
        t0 = time.monotonic()
        async for d in reg.chat(endpoint).generate(ask):
            if d.text:
                return time.monotonic() - t0
        return time.monotonic() - t0

    return run_blocking(go)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streamers", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    log_to_stdout()
    tmp = Path(tempfile.mkdtemp(prefix="qfnb-bench-ckserve-"))
    reg = EngineRegistry(tmp / "data")

    def engine() -> dict[str, Any]:
        return next(r for r in reg.engine_states() if r["model"] == GEMMA)

    try:
        checkpoints = make_checkpoints(tmp / "run", 3)
        first_token(reg, GEMMA)  # the engine runs, serving the base model only
        streamers = Streamers(reg, args.streamers, args.tokens)
        streamers.start()
        deadline = time.monotonic() + 300
        while len(streamers.streams) < 2 * args.streamers and time.monotonic() < deadline:
            time.sleep(0.5)  # the baseline: streams with the base model alone in the engine
        t_deploy = time.monotonic()
        rows: list[tuple[str, int, int, float]] = []

        def step(name: str, action: Any) -> None:
            before, t0 = engine(), time.monotonic()
            action()
            after = engine()
            rows.append((name, after["starts"] - before["starts"], after["loads"] - before["loads"],
                         time.monotonic() - t0))

        for ck in checkpoints:  # deploy: what Platform.deploy asks of the registry, then a chat
            name = f"ep_tuned@{ck.name}"
            step(f"deploy {ck.name}", lambda name=name, ck=ck: (
                reg.register_adapter(name, GEMMA, ck, checkpoints), first_token(reg, name)))
        b_after_a: list[float] = []
        base: list[float] = []

        def compare() -> None:
            for _ in range(args.rounds):
                first_token(reg, f"ep_tuned@{checkpoints[0].name}")
                b_after_a.append(first_token(reg, f"ep_tuned@{checkpoints[1].name}"))
                base.append(first_token(reg, GEMMA))

        step("compare A, B, base", compare)
        step("remove all three", lambda: [shutil.rmtree(ck) for ck in checkpoints])
        time.sleep(3)
        streamers.stop()
        t_end = time.monotonic()
        print("\nstep                      engine starts   adapters loaded   seconds")
        for name, starts, loads, secs in rows:
            print(f"{name:<25} {starts:>13}   {loads:>15}   {secs:7.2f}")
        print(f"\nbase streams: {len(streamers.streams)} completed, {len(streamers.errors)} failed, {streamers.cut} cut"
              + (f" ({streamers.errors[0]})" if streamers.errors else ""))
        print(f"longest pause between two base tokens: {streamers.longest_pause(0, t_deploy):.2f} s before the "
              f"first deploy, {streamers.longest_pause(t_deploy, t_end):.2f} s from it to the end")
        print(f"first token: checkpoint B right after A {statistics.median(b_after_a):.3f} s, base "
              f"{statistics.median(base):.3f} s (median of {args.rounds})")
        print(f"engine processes started in all: {engine()['starts']} (adapters registered: {engine()['adapters']}, "
              f"loaded at runtime: {engine()['loads']})")
        ok = not streamers.errors and not streamers.cut
        return 0 if ok else 1
    finally:
        reg.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

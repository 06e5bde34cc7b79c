"""Local engine overhead: decode speed vs bare llama.cpp, and LoRA step time vs a plain peft loop.

    .venv/bin/python bench/local_engine.py [--tokens 128] [--rounds 3] [--skip-http] [--skip-lora]

1. Decode tokens/s of ``EngineRegistry``'s Qwen engine vs a bare ``llama_cpp.Llama`` on the same
   GGUF, prompt and greedy settings (target >= 90 %), and through the embedded server over HTTP
   (v1 completions, streamed). Decode time runs from the first streamed token to the last.
2. Seconds per LoRA step of the worker's ``train_step`` vs a plain peft loop (``model(labels=...)``,
   same bf16 autocast, same batch of the demo set) on Gemma-3-270M.
Rounds alternate between the contenders; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.local_engine")

PROMPT = (
    "<|im_start|>user\nWrite a Python module that implements a binary search tree with insert, delete, "
    "search and in-order traversal, with docstrings.<|im_end|>\n<|im_start|>assistant\n"
)


def timed_stream(chunks: Iterator[Any], count: Callable[[Any], int]) -> tuple[int, float]:
    """``(tokens after the first, seconds from the first chunk to the last)``."""
    first = last = 0.0
    tokens = 0
    for chunk in chunks:
        now = time.perf_counter()
        n = count(chunk)
        if n and not first:
            first = now
        else:
            tokens += n
        last = now
    return tokens, last - first


def bench_decode(data_dir: Path, n_tokens: int, rounds: int, http: bool) -> dict[str, float]:
    from llama_cpp import Llama
    from qfnb.local.engines.llama import N_THREADS

    from qfnb.local import assets
    from qfnb.local.engines import DEFAULT_CHAT, EngineRegistry

    gguf = assets.gguf_path(DEFAULT_CHAT, data_dir)
    bare = Llama(model_path=str(gguf), n_ctx=4096, n_threads=N_THREADS, n_threads_batch=N_THREADS, verbose=False)
    engine = EngineRegistry(data_dir).chat(DEFAULT_CHAT)
    params = {"temperature": 0.0, "max_output_tokens": n_tokens}

    def run_bare() -> tuple[int, float]:
        stream = bare.create_completion(PROMPT, max_tokens=n_tokens, temperature=0.0, stream=True)
        return timed_stream(iter(stream), lambda c: 1)  # type: ignore[arg-type]

    last_count = [0]

    def count_delta(d: Any) -> int:
        n = d.completion_tokens - last_count[0]
        last_count[0] = d.completion_tokens
        return n

    def run_ours() -> tuple[int, float]:
        last_count[0] = 0
        return timed_stream(engine.complete(PROMPT, params=params), count_delta)

    contenders: dict[str, Callable[[], tuple[int, float]]] = {"bare": run_bare, "registry": run_ours}
    if http:
        contenders["http"] = http_runner(data_dir, n_tokens)
    for fn in contenders.values():  # warm-up: loads, prompt cache
        fn()
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            tokens, secs = fn()
            rates[name].append(tokens / secs)
            log.info("%-8s %d tokens in %.2f s: %.1f tok/s", name, tokens, secs, tokens / secs)
    return {k: statistics.median(v) for k, v in rates.items()}


def http_runner(data_dir: Path, n_tokens: int) -> Callable[[], tuple[int, float]]:
    import httpx

    from qfnb.local.embedded import ensure_started
    from qfnb.protocol.routes import MODEL_API_PREFIX, OAUTH_TOKEN

    platform = ensure_started(data_dir)
    client = httpx.Client(base_url=platform.base_url, timeout=120)
    token = client.post(
        OAUTH_TOKEN,
        params={
            "grant_type": "client_credentials",
            "client_id": platform.api_key,
            "client_secret": platform.secret_key,
        },
    ).json()["access_token"]
    url = f"{MODEL_API_PREFIX}/completions/qwen2_5_coder_0_5b_instruct"
    body = {"prompt": PROMPT, "stream": True, "temperature": 0.0001, "max_output_tokens": n_tokens}

    def lines() -> Iterator[dict[str, Any]]:
        with client.stream("POST", url, params={"access_token": token}, json=body) as resp:
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    yield json.loads(line[5:])

    def run() -> tuple[int, float]:
        # one SSE event per generated token (empty pieces of split UTF-8 characters are not sent)
        return timed_stream(lines(), lambda event: 1 if event.get("result") else 0)

    return run


def bench_lora(data_dir: Path, rounds: int) -> dict[str, float]:
    import torch

    from qfnb.local import assets
    from qfnb.local.engines import GEMMA
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
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--skip-lora", action="store_true")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("QFNB_DATA_DIR") or Path.home() / ".qfnb"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines would show the OAuth secret
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.skip_decode:
        rates = bench_decode(args.data_dir, args.tokens, args.rounds, not args.skip_http)
        log.info("decode tok/s (median): %s", {k: round(v, 1) for k, v in rates.items()})
        for name in ("registry", "http"):
            if name in rates:
                log.info("%s / bare llama.cpp = %.1f %%", name, 100 * rates[name] / rates["bare"])
    if not args.skip_lora:
        steps = bench_lora(args.data_dir, args.rounds)
        log.info("LoRA s/step (median): %s", {k: round(v, 2) for k, v in steps.items()})
        log.info("worker step / plain peft step = %.2f", steps["worker"] / steps["plain_peft"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

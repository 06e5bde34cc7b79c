"""Does a seeded, sampled answer repeat on the main engine, alone and beside other streams?

    .venv/bin/python bench/seed_drift.py [--runs 4] [--tokens 48] [--model NAME] [--adapter LORA.gguf]

Starts bare ``llama-server`` with the platform's own flags (8 slots, the default chat model or
``--model``'s GGUF; with ``--adapter``, a LoRA of that model applied to every request), sends
one seeded request (temperature 0.9) three times alone, then ``--runs`` times beside 7 unseeded
streams, joining them a little later each run, and prints the hashes of the texts (with each token's
top-5 log-probabilities, so a last-bit difference counts) and how many distinct ones there were:
once with llama.cpp's own kernels, then once more with the switch of
scripts/llama_server_seed_invariant.patch on (``LLAMA_ARG_SEED_BATCH_INVARIANT=1``, as the platform
starts its engines), which computes every batch holding a seeded request with batch-invariant
kernels. With llama.cpp's own kernels a seed repeats only alone; with the switch it repeats beside
the others too (docs/local-platform.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import tempfile
from pathlib import Path

import httpx
from _common import load_average, log_to_stdout, serve_bare

from qfnb.local.engines import DEFAULT_CHAT
from qfnb.local.engines.llama.process.command import SEED_INVARIANT_ENV
from qfnb.local.engines.store import assets

log = logging.getLogger("bench.seed_drift")

PROMPTS = ["Write a short poem about autumn leaves.", "Explain how a bicycle works.", "Tell me a story about a cat.",
           "List ideas for a birthday party.", "Describe the ocean at night.", "What makes bread rise?",
           "Give advice to a new programmer.", "Describe a busy market."]
SEED = 1234


async def complete(client: httpx.AsyncClient, base: str, prompt: str, tokens: int, seed: int | None,
                   fields: dict[str, object]) -> str:
    """One completion of ``prompt`` in the model's chat format, with ``fields`` added; seeded ones read
    their prompt afresh and come back with each token's top-5 log-probabilities after the text."""
    body: dict[str, object] = {"prompt": f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
                               "n_predict": tokens, "temperature": 0.9, "top_p": 0.95,
                               "cache_prompt": seed is None, **fields}
    if seed is not None:
        body |= {"seed": seed, "n_probs": 5}
    reply = await client.post(base + "/completion", json=body, timeout=900)
    reply.raise_for_status()
    answer = reply.json()
    return str(answer["content"]) + json.dumps(answer.get("completion_probabilities"), sort_keys=True)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


async def measure(base: str, runs: int, tokens: int, fields: dict[str, object]) -> None:
    async with httpx.AsyncClient() as client:
        alone = [digest(await complete(client, base, PROMPTS[0], tokens, SEED, fields)) for _ in range(3)]
        log.info("alone: %s", alone)
        beside = []
        for run in range(runs):
            others = [asyncio.create_task(complete(client, base, p, tokens + 8 * run, None, fields))
                      for p in PROMPTS[1:]]
            await asyncio.sleep(0.15 * run)
            beside.append(digest(await complete(client, base, PROMPTS[0], tokens, SEED, fields)))
            await asyncio.gather(*others)
        log.info("beside 7 other streams: %s", beside)
        log.info("distinct answers: %d alone, %d in all (the same seed, the same prompt)", len(set(alone)),
                 len(set(alone + beside)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--model", default=DEFAULT_CHAT, help="a built-in llama.cpp model (default: the chat model)")
    ap.add_argument("--adapter", type=Path, help="a LoRA GGUF of that model, applied to every request")
    args = ap.parse_args()
    adapters = (args.adapter,) if args.adapter else ()
    # the server's adapter 0, applied to every request
    fields: dict[str, object] = {"lora": [{"id": 0, "scale": 1.0}]} if adapters else {}
    log_to_stdout()
    log.info("load average at start: %s", load_average())
    for switch in ("0", "1"):
        log.info("LLAMA_ARG_SEED_BATCH_INVARIANT=%s", switch)
        proc, base = serve_bare(8, Path(tempfile.mkdtemp(prefix="qfnb-seed-drift-")),
                                gguf=assets.gguf_path(args.model), env={SEED_INVARIANT_ENV: switch},
                                adapters=adapters)
        try:
            asyncio.run(measure(base, args.runs, args.tokens, fields))
        finally:
            proc.terminate()
            proc.wait()
    log.info("load average at end: %s", load_average())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

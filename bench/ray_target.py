"""Rows/s of one batch on a one-node Ray head vs the same batch on the embedded platform (same model,
same rows, measured in one run).

    python bench/ray_target.py [--rows 40] [--model Gemma-3-270M] [--tokens 16] [--cpus 2]

Both sides are timed from submission to the last answer, so Ray's job start (runtime env, driver,
one llama-server per worker) is in its figure, as a user would see it. Prints both rates, the ratio
and the load average before and after (the machine is shared: figures move with it).

What a second node adds is not measured here: a second raylet on the same machine shares its CPUs,
so it would show the cost of one more engine, not the gain of one more machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "batch"))

log = logging.getLogger("bench.ray_target")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--model", default="Gemma-3-270M")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ray_head import ray_head

    from qfnb import ChatCompletion

    prompts = [[{"role": "user", "content": f"Write one short sentence about the number {i}."}]
               for i in range(args.rows)]
    chat = ChatCompletion(model=args.model)
    load_before = os.getloadavg()

    start = time.perf_counter()
    local = chat.batch_do(prompts, target="local", max_output_tokens=args.tokens, worker_num=8).results()
    local_s = time.perf_counter() - start
    assert not any(isinstance(v, Exception) for v in local), [v for v in local if isinstance(v, Exception)][:1]

    with tempfile.TemporaryDirectory(prefix="qfnb-bench-ray-") as tmp, ray_head(Path(tmp), cpus=args.cpus) as target:
        start = time.perf_counter()
        job = chat.batch_do(prompts, target=target, max_output_tokens=args.tokens)
        state = job.wait()
        ray_s = time.perf_counter() - start
        assert state.done == args.rows, state

    local_rate, ray_rate = args.rows / local_s, args.rows / ray_s
    print(f"{args.rows} rows, {args.model}, {args.tokens} output tokens max")
    print(f"embedded platform, live batch_do (8 at once): {local_rate:.2f} rows/s ({local_s:.1f} s)")
    print(f"one-node Ray head, {args.cpus} CPUs, Ray job:        {ray_rate:.2f} rows/s ({ray_s:.1f} s, job start "
          "included)")
    print(f"ratio Ray / embedded: {ray_rate / local_rate:.2f}x")
    print("load average (1, 5, 15 min) before: {:.1f} {:.1f} {:.1f}, after: {:.1f} {:.1f} {:.1f} on {} CPUs".format(
        *load_before, *os.getloadavg(), os.cpu_count()))


if __name__ == "__main__":
    main()

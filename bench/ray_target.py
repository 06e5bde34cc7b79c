"""Rows/s of one batch on a Ray cluster vs the same batch on the embedded platform (same model, same
number of rows, measured in one run).

    python bench/ray_target.py [--rows 40] [--model Gemma-3-270M] [--tokens 16] [--cpus 2] [--nodes 1|2]

``--nodes 1``: a one-node head with ``--cpus`` CPUs (one worker per CPU). ``--nodes 2``: a head with
one CPU runs the job alone (one node, one worker), then a second node with one CPU joins it (another
raylet on this machine, its own ports and temp dir) and the job runs again on both (two workers, one
per node); the rows each node's engine answered are counted from the job's journal (``qfnb_node`` on
each ``QFNB-ROW`` line). Each Ray run has its own prompts (a run tag), so the second is not answered
from the first's journal.

Every side is timed from submission to the last answer, so Ray's job start (runtime env, driver,
one llama-server per worker) is in its figure, as a user would see it. Prints the rates, the ratios
and the load average before and after (the machine is shared: figures move with it).

Two nodes on one machine share its CPUs: the figure shows that rows spread over the nodes and what
one more node costs, not the gain of one more machine.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "batch"))

log = logging.getLogger("bench.ray_target")


def prompts(rows: int, tag: str) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Write one short sentence about the number {i}.{tag}"}] for i in range(rows)]


def ray_run(chat: Any, target: str, rows: int, tokens: int, tag: str) -> tuple[float, collections.Counter[str]]:
    """Seconds for the batch as one Ray job on ``target``, and the rows each node answered (from its journal)."""
    from ray.job_submission import JobSubmissionClient

    from qfnb.local.cluster.jobs import NODE_KEY
    from qfnb.resources.batch.ray_jobs import log_rows

    start = time.perf_counter()
    job = chat.batch_do(prompts(rows, tag), target=target, max_output_tokens=tokens)
    state = job.wait()
    seconds = time.perf_counter() - start
    assert state.done == rows, state
    logs = JobSubmissionClient(target.replace("ray://", "http://")).get_job_logs(job.task_id)
    return seconds, collections.Counter(str(r.get(NODE_KEY))[:8] for r in log_rows(logs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--model", default="Gemma-3-270M")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=2, help="the one-node head's CPUs (--nodes 1)")
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 2))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ray_head import ray_head, ray_node

    from qfnb import ChatCompletion

    chat = ChatCompletion(model=args.model)
    load_before = os.getloadavg()

    start = time.perf_counter()
    local = chat.batch_do(prompts(args.rows, ""), target="local", max_output_tokens=args.tokens,
                          worker_num=8).results()
    local_s = time.perf_counter() - start
    assert not any(isinstance(v, Exception) for v in local), [v for v in local if isinstance(v, Exception)][:1]
    runs: list[tuple[str, float, collections.Counter[str]]] = []

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qfnb-bench-ray-")))
        cpus = args.cpus if args.nodes == 1 else 1
        target = stack.enter_context(ray_head(tmp / "head", cpus=cpus))
        label = f"one-node Ray head, {cpus} CPU{'s' if cpus > 1 else ''}"
        runs.append((label, *ray_run(chat, target, args.rows, args.tokens, " (1)")))
        if args.nodes == 2:
            node = stack.enter_context(ray_node(tmp / "node", target, cpus=1))
            log.info("second node %s joined", node[:8])
            runs.append(("two nodes, 1 CPU each", *ray_run(chat, target, args.rows, args.tokens, " (2)")))

    local_rate = args.rows / local_s
    print(f"{args.rows} rows, {args.model}, {args.tokens} output tokens max")
    print(f"embedded platform, live batch_do (8 at once): {local_rate:.2f} rows/s ({local_s:.1f} s)")
    for label, seconds, per_node in runs:
        rate = args.rows / seconds
        spread = ", ".join(f"{node}: {n}" for node, n in sorted(per_node.items()))
        print(f"{label}: {rate:.2f} rows/s ({seconds:.1f} s, job start included; "
              f"{rate / local_rate:.2f}x embedded; rows per node {spread})")
    if len(runs) == 2:
        print(f"ratio two nodes / one node: {runs[0][1] / runs[1][1]:.2f}x")
    print("load average (1, 5, 15 min) before: {:.1f} {:.1f} {:.1f}, after: {:.1f} {:.1f} {:.1f} on {} CPUs".format(
        *load_before, *os.getloadavg(), os.cpu_count()))


if __name__ == "__main__":
    main()

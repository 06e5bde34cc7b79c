"""A judge that keeps pace under load (issue 71): the embedded platform's judge (``--judge`` with no
model: ``LocalJudgeEvaluator()``, the default chat model on the local platform) grades ``--items``
answers, four at a time, on the platform daemon of each checkout given (started by the judge's first
call, as in a notebook), on the machine as loaded as it is. Printed per run: items judged, failed
(no reply after the client's retries), seconds per item, the engine's watchdog events from the
daemon's log (requests cut at the compute deadline or as stalled, engines killed as stuck), and the
load average at the start and end.

    .venv/bin/python bench/judge_pace.py [--items 12] [--rounds 2] [--deadline 600]
        [--root before=/path/to/old/checkout --root after=.]

``--deadline`` is ``QFNB_ENGINE_REQUEST_SECONDS`` (the watchdog's compute deadline) for every
daemon: a short one shows on a few short answers what the 600 s default does to a 1.5B model's long
answers at load 22 (the issue's case). The checkouts' runs alternate, the first side alternating each round,
so the load they meet is alike; each daemon is new (a cold engine, loaded before its timing starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: a run of another checkout imports that checkout's qfnb

from bench._common import load_average, log_to_stdout  # noqa: E402

log = logging.getLogger("bench.judge_pace")
PYTHONPATH = os.environ.get("PYTHONPATH", "")

#: what the watchdog logs, and what each line means
EVENTS = {"deadline": re.compile(r"compute deadline"), "stalled": re.compile(r"no decode progress|held the engine"),
          "killed": re.compile(r"killing the process")}


def samples(n: int) -> list[tuple[str, str, str]]:
    """``n`` (question, reference, answer) triples: sums, every third answer wrong."""
    rows = []
    for i in range(n):
        a, b = 17 + 3 * i, 25 + 7 * i
        answer = a + b + (1 if i % 3 == 2 else 0)
        rows.append((f"What is {a} + {b}? Explain briefly.", str(a + b), f"{a} + {b} = {answer}."))
    return rows


def judge_once(root: Path, items: int, deadline: float, tmp: Path, side: str) -> dict[str, float]:
    """``root``'s code (client and daemon) judging ``items`` answers: this file run again in a child
    process with ``root`` first on its path (the daemon a client starts runs the client's own code)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), PYTHONPATH]))}
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps([str(root), items, deadline, str(tmp), side])],
                         env=env, cwd=root, check=True, stdout=subprocess.PIPE, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _judge_here(items: int, deadline: float, tmp: Path, side: str) -> dict[str, float]:
    """The judge over ``items`` answers on a daemon started as its first call starts one, on a new
    data dir, its engine loaded first."""
    from qfnb._core.backend import daemon
    from qfnb.evaluation.base import Sample
    from qfnb.evaluation.evaluators.judge import LocalJudgeEvaluator

    data = tmp / f"data-{side}-{time.monotonic_ns()}"
    os.environ.update(QFNB_DATA_DIR=str(data), QFNB_ENGINE_REQUEST_SECONDS=str(deadline))  # the daemon's too
    try:
        judge = LocalJudgeEvaluator(concurrency=4)
        warm = asyncio.run(judge.aevaluate_many([Sample(0, "m", "What is 1 + 1?", "2", "2")]))
        log.info("%s: warm-up reply %r", side, str(warm[0].get("judge_score_judgement"))[:60])
        rows = [Sample(i, "m", q, ref, out) for i, (q, ref, out) in enumerate(samples(items))]
        start_load, start = os.getloadavg()[0], time.perf_counter()
        results = asyncio.run(judge.aevaluate_many(rows))
        seconds = time.perf_counter() - start
    finally:
        daemon.stop_daemon(data, force=True, timeout=30)
    failed = sum(str(r.get("judge_score_judgement", "")).startswith("<judge failed") for r in results)
    text = (data / "daemon.log").read_text(encoding="utf-8", errors="replace")
    found = {name: float(len(pattern.findall(text))) for name, pattern in EVENTS.items()}
    return {"items": float(items), "failed": float(failed), "scored": float(sum(
        r.get("judge_score") is not None for r in results)), "seconds_per_item": seconds / items,
            "load_start": start_load, "load_end": os.getloadavg()[0], **found}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--deadline", type=float, default=600.0, help="QFNB_ENGINE_REQUEST_SECONDS for every daemon")
    ap.add_argument("--root", action="append", default=[], help="NAME=PATH of a checkout (repeatable; default "
                                                                 "this one, as 'this')")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a child's run: [root, items, deadline, tmp, side]
    args = ap.parse_args()
    log_to_stdout()
    if args.one:
        _, items, deadline, tmp, side = json.loads(args.one)
        print(json.dumps(_judge_here(int(items), float(deadline), Path(tmp), str(side))), flush=True)
        return
    roots = [(r.split("=", 1)[0], Path(r.split("=", 1)[1]).resolve()) for r in args.root] or [("this", ROOT)]
    for key in [k for k in os.environ if k.startswith("QIANFAN_")]:
        os.environ.pop(key)  # the embedded platform's judge, found by its data dir
    log.info("load average at start: %s", load_average())
    runs: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="qfnb-judge-pace-") as tmp:
        for round_no in range(args.rounds):
            order = roots if round_no % 2 == 0 else roots[::-1]
            for side, root in order:
                found = judge_once(root, args.items, args.deadline, Path(tmp), side)
                log.info("round %d %s: %s", round_no + 1, side, {k: round(v, 1) for k, v in found.items()})
                runs.append((side, found))
    log.info("deadline %g s, %d items a run, concurrency 4:", args.deadline, args.items)
    log.info("  | side | round | failed | scored | s/item | cut at deadline | stalled | engines killed | load |")
    for n, (side, r) in enumerate(runs):
        log.info("  | %s | %d | %d/%d | %d | %.1f | %d | %d | %d | %.1f -> %.1f |", side, n // len(roots) + 1,
                 r["failed"], r["items"], r["scored"], r["seconds_per_item"], r["deadline"], r["stalled"],
                 r["killed"], r["load_start"], r["load_end"])
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    main()

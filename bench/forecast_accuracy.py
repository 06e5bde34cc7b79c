"""How close ``qfnb.forecast`` comes to the runs it forecasts, on the embedded platform's default
chat model (a daemon started here over a temporary data dir, stopped at the end).

    .venv/bin/python bench/forecast_accuracy.py [--rounds 3] [--items 8] [--max-tokens 40]

A pilot batch of ``--items`` prompts is run first (the ledger then holds this model's answers and
this machine's speed for it). Each round then forecasts a batch of ``--items`` new prompts of the
same kind, runs it, and prints the forecast's total tokens and ETA against the run's, as ratios
(actual ÷ forecast). Targets (issue 44): total tokens within ±25 %, ETA within ±50 % on an idle
machine. Each round's forecast learns from every run before it, as a user's next run would.
Say the load average you ran it at (printed at the start and the end).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import log_to_stdout

log = logging.getLogger("bench.forecast_accuracy")

SUBJECTS = ["the moon", "a river", "bread", "a violin", "the desert", "a lighthouse", "coffee", "an owl", "snow",
            "a bridge", "honey", "a volcano", "the ocean", "a kite", "salt", "a lantern", "copper", "a fern",
            "a clock", "paper", "a cave", "tea", "glass", "a map", "bees", "dice", "tides", "a harbour",
            "a forest", "a library", "rain", "a mountain"]


def asks(subjects: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Describe {s} in one short sentence."}] for s in subjects]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=40)
    args = parser.parse_args()
    if (args.rounds + 1) * args.items > len(SUBJECTS):
        parser.error(f"--rounds x --items needs more than the {len(SUBJECTS)} prompts this bench has")
    log_to_stdout()
    data = Path(tempfile.mkdtemp(prefix="qfnb-forecast-bench-"))
    for key in [k for k in os.environ if k.startswith("QIANFAN_")]:
        os.environ.pop(key)
    os.environ["QFNB_DATA_DIR"] = str(data / "data")
    os.environ["QIANFAN_CACHE_DIR"] = str(data / "cache")

    import qfnb
    from qfnb._core.backend import daemon
    from qfnb.protocol.model_names import LOCAL_CHAT_MODEL
    from qfnb.resources import ChatCompletion

    log.info("load average at the start: %.2f", os.getloadavg()[0])
    chat = ChatCompletion(model=LOCAL_CHAT_MODEL)
    params = {"max_output_tokens": args.max_tokens, "temperature": 0.01}
    tokens, etas = [], []
    try:
        pilot = chat.batch_do(asks(SUBJECTS[:args.items]), worker_num=2, **params).results()
        if any(isinstance(r, Exception) for r in pilot):
            log.error("the pilot failed: %s", next(r for r in pilot if isinstance(r, Exception)))
            return 1
        for k in range(1, args.rounds + 1):
            subjects = SUBJECTS[k * args.items:(k + 1) * args.items]
            fc = qfnb.forecast(asks(subjects), model=LOCAL_CHAT_MODEL, max_tokens=args.max_tokens)
            since, start = time.time(), time.perf_counter()
            answers = chat.batch_do(asks(subjects), worker_num=2, **params).results()
            check = fc.against(since=since, seconds=time.perf_counter() - start)
            if any(isinstance(r, Exception) for r in answers) or not check.tokens_ratio or not check.eta_ratio:
                log.error("round %d could not be measured: %s", k, check)
                return 1
            tokens.append(check.tokens_ratio)
            etas.append(check.eta_ratio)
            log.info("round %d: %s\n%s\n", k, fc, check)
    finally:
        daemon.stop_daemon(data / "data", force=True, timeout=30)
    log.info("%-8s %-22s %-22s", "round", "tokens actual/forecast", "time actual/forecast")
    for k, (t, e) in enumerate(zip(tokens, etas, strict=True), 1):
        log.info("%-8d %-22s %-22s", k, f"{t:.0%}", f"{e:.0%}")
    log.info("%-8s %-22s %-22s", "median", f"{statistics.median(tokens):.0%}", f"{statistics.median(etas):.0%}")
    log.info("targets: tokens 75%%-125%%, time 50%%-150%% (idle machine); load average at the end: %.2f",
             os.getloadavg()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())

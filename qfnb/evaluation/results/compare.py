"""Paired comparison of models on the same items: is the difference real, and where is it?

:func:`compare_samples` pairs each model's per-item scores with the baseline's (same ``index``;
with repeats, each item's mean over its repeats) and gives per metric: the mean difference
with a seeded bootstrap CI (two-level with repeats), McNemar's exact test for pass/fail
metrics or the paired permutation test for scores, win/tie/loss counts, and the items that
changed. With several models, the p-values of each metric are Holm-adjusted over the
comparisons with the baseline. A difference is reported as real only when the adjusted
p-value is below ``alpha`` and the CI excludes 0. Every metric is taken as higher-is-better.

Generated answers are read for degeneration first (:mod:`qfnb.protocol.console.degeneration`, the
reference as each answer's): a metric that a collapsed answer satisfies (a marker, a keyword) never
decides alone. Where either model gave a degenerate answer, each metric gets a second row,
``"<metric>, degeneration first"``, each item decided by the one rule of the answer judge
(:func:`qfnb.evaluation.stats.degeneration_first.decided`: a degenerate answer loses to one that is not,
then the higher score); a model that collapsed (most answers degenerate, or one answer to most items)
is never the winner of any row (:data:`~.stats._words.COLLAPSED`), and the sentences open with the
collapse (:func:`~qfnb.evaluation.stats.degeneration_first.collapse_said`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qfnb.protocol.console import degeneration
from qfnb.protocol.console.degeneration import AnswersReport
from qfnb.resources.safe_html import clean

from .._errors import invalid
from ..data import item_scores
from ..stats import paired as st
from ..stats._words import BETTER, COLLAPSED, NO_DIFF, SAME, TOO_FEW, UNSURE, WORSE, format_p
from ..stats._words import digits_for as _digits
from ..stats._words import signed as _num
from ..stats.degeneration_first import Answers, collapse_said, decided
from ..stats.plan import items_to_decide
from .compare_view import comparison_html, forest_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

CORRECTIONS = ("holm", "bonferroni", "none")


@dataclass(frozen=True)
class PairedMetric:
    """One model against the baseline on one metric (``diff`` = model − baseline)."""

    model: str
    baseline: str
    metric: str
    kind: str  # "pass/fail" or "score"
    n: int  # paired items
    excluded: int  # items missing a score on either side (failed inference, unparsed judge reply)
    repeats: int  # most repeats of an item (1: none)
    mean_model: float
    mean_baseline: float
    diff: float
    ci: st.Interval | None
    test: str
    p_value: float
    p_adjusted: float
    wins: int
    ties: int
    losses: int
    alpha: float = 0.05
    correction: str = "holm"
    #: paired items a new run would need to detect the observed difference with 80% power (when undecided)
    items_needed: int | None = None
    #: why the excluded items are out (a pairwise judge leaves out the pairs it judged inconsistently)
    excluded_why: str = "without a score on both sides"
    #: which of the two (model, baseline) collapsed: neither wins a row
    collapsed: tuple[str, ...] = ()

    @property
    def winner(self) -> str | None:
        """The model the row finds better (None: no difference shown), unless it collapsed."""
        plain = self.plain_verdict
        side = self.model if plain == BETTER else self.baseline if plain == WORSE else None
        return None if side in self.collapsed else side

    @property
    def verdict(self) -> str:
        """:attr:`plain_verdict`, or :data:`COLLAPSED` where the side it favours collapsed."""
        plain = self.plain_verdict
        if plain in (BETTER, WORSE) and self.winner is None:
            return COLLAPSED
        return plain

    @property
    def plain_verdict(self) -> str:
        """What the numbers alone say, whether or not the answers collapsed."""
        if self.n < 2 or self.ci is None:
            return TOO_FEW
        if self.wins == 0 and self.losses == 0 and self.ci.low == self.ci.high:
            return SAME
        excludes = self.ci.low > 0 or self.ci.high < 0
        significant = self.p_adjusted < self.alpha
        if excludes and significant:
            return BETTER if self.diff > 0 else WORSE
        if not excludes and not significant:
            return NO_DIFF
        return UNSURE

    @property
    def sentence(self) -> str:
        """The comparison in plain words (what the report prints under the table)."""
        text = self._sentence()
        if self.excluded:
            text += f" [{self.excluded} item(s) {self.excluded_why} left out]"
        return text

    def _sentence(self) -> str:
        m, b, k, v = self.model, self.baseline, self.metric, self.verdict
        if v == COLLAPSED:
            side = m if self.plain_verdict == BETTER else b
            text = f"{m} vs {b} on {k}: {side} scores higher ({self._numbers()}), but {side} collapsed: not a win"
            return text if k.endswith(DEGENERATION_FIRST) else f"{text}; see '{k}{DEGENERATION_FIRST}'"
        if v == TOO_FEW:
            return f"{m} vs {b} on {k}: too few paired items ({self.n}) to compare"
        if v == SAME:
            return f"{m} and {b} score the same on {k} on all {self.n} items"
        assert self.ci is not None
        dg = _digits(self.diff, self.ci.low, self.ci.high)
        level = f"{self.ci.confidence:.0%} CI"
        ci = f"{level} {_num(self.ci.low, dg)}\u2026{_num(self.ci.high, dg)}"
        reps = f", {self.repeats} repeats each" if self.repeats > 1 else ""
        adjusted = self.correction != "none" and self.p_adjusted != self.p_value  # holm / bonferroni
        adj = f" ({self.correction.capitalize()}-adjusted)" if adjusted else ""
        p = f"p={format_p(self.p_adjusted)}{adj}"
        if v == BETTER:
            return (f"{m} beats {b} on {k} by {_num(self.diff, dg)} ({ci}, {self.wins}/{self.n} items better"
                    f"{reps}, {p})")
        if v == WORSE:
            return (f"{m} is worse than {b} on {k} by {_num(self.diff, dg)} ({ci}, {self.losses}/{self.n} items "
                    f"worse{reps}, {p})")
        counts = f"{self.wins} better, {self.losses} worse, {self.ties} tied"
        if v == NO_DIFF:
            return (f"{m} vs {b} on {k}: no detectable difference ({_num(self.diff, dg)}, {ci} spans 0; "
                    f"{counts}{reps}){self._needed(dg)}")
        why = "the CI excludes 0 but" if self.ci.low > 0 or self.ci.high < 0 else "the CI spans 0 but"
        return (f"{m} vs {b} on {k}: inconclusive ({_num(self.diff, dg)}, {ci}; {why} {p}; {counts}{reps})"
                f"{self._needed(dg)}")

    def _numbers(self) -> str:
        """The difference, its CI and the test's p, in words."""
        assert self.ci is not None
        dg = _digits(self.diff, self.ci.low, self.ci.high)
        return (f"{_num(self.diff, dg)}, {self.ci.confidence:.0%} CI {_num(self.ci.low, dg)}\u2026"
                f"{_num(self.ci.high, dg)}, p={format_p(self.p_adjusted)}")

    def _needed(self, dg: int) -> str:
        if self.items_needed is None or self.items_needed <= self.n:
            return ""
        return (f"; a difference of {_num(self.diff, dg)} needs about {self.items_needed} paired items to be "
                f"detected with 80% power (plan_comparison / --plan)")

    def as_row(self) -> dict[str, Any]:
        return {"model": self.model, "baseline": self.baseline, "metric": self.metric, "kind": self.kind,
                "n": self.n, "excluded": self.excluded, "repeats": self.repeats, "model_mean": self.mean_model,
                "baseline_mean": self.mean_baseline, "diff": self.diff,
                "ci_low": self.ci.low if self.ci else float("nan"),
                "ci_high": self.ci.high if self.ci else float("nan"), "test": self.test, "p_value": self.p_value,
                "p_adjusted": self.p_adjusted, "wins": self.wins, "ties": self.ties, "losses": self.losses,
                "verdict": self.verdict, "items_needed": self.items_needed}


#: the name of a metric's row decided with degeneration first: ``"<metric>, degeneration first"``
DEGENERATION_FIRST = ", degeneration first"


@dataclass
class Comparison:
    """Models against a baseline, per metric: a table, sentences, changed items and a forest plot."""

    baseline: str
    models: list[str]
    rows: list[PairedMetric]
    #: per model: one row per item of the baseline and the model (``index``, ``input``,
    #: ``reference``, ``baseline_output``, ``model_output`` and, per metric, ``baseline/{m}``, ``model/{m}``)
    items: dict[str, pd.DataFrame]
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: per model: its answers and the baseline's read for degeneration, over the items both answered
    #: (absent where the outputs are not generated text)
    answers: dict[str, tuple[AnswersReport, AnswersReport]] = field(default_factory=dict)

    @property
    def collapses(self) -> list[str]:
        """A sentence for each model compared with the baseline where either collapsed."""
        out = []
        for m in self.models:
            if m in self.answers:
                said = collapse_said(m, self.baseline, *self.answers[m])
                if said is not None and said not in out:
                    out.append(said)
        return [f"{s}." for s in out]

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r.metric for r in self.rows))

    def to_dataframe(self) -> pd.DataFrame:
        """One row per (model, metric)."""
        return pd.DataFrame([r.as_row() for r in self.rows])

    @property
    def sentences(self) -> list[str]:
        """A collapse first (:attr:`collapses`), then each row's sentence."""
        return [*self.collapses, *(r.sentence for r in self.rows)]

    @property
    def method_note(self) -> str:
        """How the numbers were computed (printed under the sentences)."""
        s = self.settings
        ci = {"expanded": "paired bootstrap, percentile interval expanded for small samples",
              "percentile": "paired bootstrap, percentile interval", "bca": "paired bootstrap, BCa interval"}
        text = (f"{s['confidence']:.0%} CIs: {ci[s['method']]} ({s['n_resamples']} resamples, seed {s['seed']}"
                f"{'; items then repeats resampled' if any(r.repeats > 1 for r in self.rows) else ''}). "
                "Tests: McNemar's exact test for pass/fail metrics, the paired permutation (sign-flip) test "
                f"for scores; significant = adjusted p < {s['alpha']} and CI excluding 0.")
        others = len(self.models)
        if others > 1 and s["correction"] != "none":
            text += (f" p-values are {s['correction'].capitalize()}-adjusted for the {others} comparisons with "
                     f"{self.baseline} on each metric; the CIs are per comparison.")
        return text

    def renamed(self, names: Mapping[str, str]) -> Comparison:
        """The same comparison with metrics shown under other names (``{"bleu4": "bleu"}``)."""
        def metric_name(name: str) -> str:
            plain = name.removesuffix(DEGENERATION_FIRST)
            return names.get(plain, plain) + name[len(plain):]

        rows = [replace(r, metric=metric_name(r.metric)) for r in self.rows]

        def col(c: str) -> str:
            side, sep, name = c.partition("/")
            return f"{side}/{metric_name(name)}" if sep and side in ("model", "baseline") else c

        items = {m: f.rename(columns=col) for m, f in self.items.items()}
        notes = list(self.notes)  # "judge:x agrees with accuracy on 6 of 6 items" / "…accuracy: Spearman": as shown
        for old, new in names.items():
            notes = [re.sub(rf" agrees with {re.escape(old)}(?=[ :])", f" agrees with {new}", n) for n in notes]
            corpus = rf"^{re.escape(old)}: (.*)the table's {re.escape(old)} "  # _corpus_notes in result.py
            notes = [re.sub(corpus, rf"{new}: \1the table's {new} ", n) for n in notes]
        return Comparison(self.baseline, list(self.models), rows, items, dict(self.settings), notes,
                          dict(self.answers))

    def row(self, model: str, metric: str) -> PairedMetric:
        for r in self.rows:
            if r.model == model and r.metric == metric:
                return r
        raise KeyError(f"no comparison of {model!r} on {metric!r}")

    def flipped(self, model: str | None = None, metric: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Items whose score changed between the baseline and ``model`` on ``metric`` (defaults:
        the first of each), largest change first; for pass/fail metrics, exactly the flips."""
        model = model or self.models[0]
        metric = metric or self.metrics[0]
        if model not in self.items:
            raise KeyError(f"{model!r} was not compared (compared: {self.models})")
        frame = self.items[model]
        a, b = f"model/{metric}", f"baseline/{metric}"
        if a not in frame.columns:
            raise KeyError(f"no metric {metric!r} (compared: {self.metrics})")
        diff = frame[a] - frame[b]
        changed = frame.assign(change=diff)[diff.notna() & (diff != 0)]
        changed = changed.reindex(changed["change"].abs().sort_values(ascending=False, kind="stable").index)
        cols = ["index", "input", "reference", "baseline_output", "model_output", b, a, "change"]
        out = changed[cols].rename(columns={"baseline_output": f"{self.baseline} output",
                                            "model_output": f"{model} output", b: f"{self.baseline} {metric}",
                                            a: f"{model} {metric}"})
        return out.head(limit) if limit else out

    def plot(self) -> Figure:
        """A forest plot: each difference with its CI, one panel per metric (no pyplot state)."""
        return forest_figure(self)

    def to_html(self, styles: Mapping[str, str] | None = None, max_flips: int = 5) -> str:
        return comparison_html(self, styles or {}, max_flips)

    def _repr_html_(self) -> str:
        return clean(self.to_html())

    def __repr__(self) -> str:
        return "\n".join([f"Comparison vs {self.baseline}", *self.sentences, self.method_note, *self.notes])


# -- building ---------------------------------------------------------------------------------------

def _item_frame(samples: pd.DataFrame, model: str, baseline: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Per item: input/reference, both outputs (the first repeat) and both mean scores."""
    first = samples.sort_values("repeat") if "repeat" in samples.columns else samples
    first = first.drop_duplicates(["llm", "index"])
    base = first[first["llm"] == baseline].set_index("index")
    other = first[first["llm"] == model].set_index("index")
    index = sorted(set(base.index) | set(other.index))
    frame = pd.DataFrame({"index": index})
    src = base.reindex(index).combine_first(other.reindex(index))
    frame["input"] = [src.at[i, "input"] for i in index]
    frame["reference"] = [src.at[i, "reference"] for i in index]
    frame["baseline_output"] = [base["output"].get(i) for i in index]
    frame["model_output"] = [other["output"].get(i) for i in index]
    for m in metrics:
        for side, tag in (("baseline", baseline), ("model", model)):
            vals = item_scores(samples, tag, m)
            frame[f"{side}/{m}"] = [float(np.mean(vals[i])) if i in vals else float("nan") for i in index]
    return frame


def _pair(model: str, baseline: str, metric: str, a: dict[int, list[float]], b: dict[int, list[float]],
          settings: Mapping[str, Any], pass_fail: bool) -> PairedMetric:
    keys = sorted(set(a) & set(b))
    excluded = len(set(a) | set(b)) - len(keys)
    repeats = max([len(a[k]) for k in keys] + [len(b[k]) for k in keys] + [1])
    ma = np.array([np.mean(a[k]) for k in keys])
    mb = np.array([np.mean(b[k]) for k in keys])
    d = ma - mb
    binary = pass_fail and repeats == 1
    ci_kw = {k: settings[k] for k in ("confidence", "n_resamples", "seed", "method")}
    ci: st.Interval | None = None
    p = float("nan")
    if len(keys) >= 2:
        ci = (st.two_level_ci([a[k] for k in keys], [b[k] for k in keys], **ci_kw) if repeats > 1
              else st.bootstrap_ci(d, **ci_kw))
        p = st.mcnemar_exact(ma, mb).p_value if binary else st.sign_flip_test(d, seed=settings["seed"])
    nan = float("nan")
    needed = items_to_decide(d, pass_fail=binary, alpha=settings["alpha"]) if len(keys) >= 3 else None
    return PairedMetric(
        model=model, baseline=baseline, metric=metric, kind="pass/fail" if binary else "score", n=len(keys),
        excluded=excluded, repeats=repeats, mean_model=float(ma.mean()) if keys else nan,
        mean_baseline=float(mb.mean()) if keys else nan, diff=float(d.mean()) if keys else nan, ci=ci,
        test="McNemar exact" if binary else "paired permutation", p_value=p, p_adjusted=p,
        wins=int(np.count_nonzero(d > 0)), ties=int(np.count_nonzero(d == 0)), losses=int(np.count_nonzero(d < 0)),
        alpha=settings["alpha"], correction=settings["correction"], items_needed=needed)


def _adjust(rows: list[PairedMetric], correction: str) -> list[PairedMetric]:
    """Each metric's p-values adjusted over its comparisons with the baseline."""
    out = list(rows)
    for metric in dict.fromkeys(r.metric for r in rows):
        pos = [i for i, r in enumerate(rows) if r.metric == metric and math.isfinite(r.p_value)]
        if len(pos) < 2 or correction == "none":
            continue
        raw = [rows[i].p_value for i in pos]
        adjusted = st.holm(raw) if correction == "holm" else st.bonferroni(raw)
        for i, p in zip(pos, adjusted, strict=True):
            out[i] = replace(rows[i], p_adjusted=p)
    return out


def compare_samples(samples: pd.DataFrame, metrics: Sequence[str], models: Sequence[str], baseline: str, *,
                    confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
                    method: st.CIMethod = "expanded", alpha: float = 0.05, correction: str = "holm",
                    preferences: Mapping[str, Mapping[int, Any]] | None = None,
                    judge_info: Mapping[str, Any] | None = None) -> Comparison:
    """Compare each of ``models`` with ``baseline`` on ``metrics`` (columns of the long ``samples``);
    ``preferences`` (``{model: {index: Preference}}``) add a pairwise judge's row per model."""
    _check_models(samples, models, baseline)
    if not metrics and preferences is None:
        raise invalid("metrics", "no per-item numeric metric to compare")
    settings = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed, "method": method,
                "alpha": alpha, "correction": correction}
    _check_settings(settings)
    rows: list[PairedMetric] = []
    for metric in metrics:
        base = item_scores(samples, baseline, metric)
        column = pd.to_numeric(samples[metric], errors="coerce").dropna()  # pass/fail: 0/1 for every model
        for m in models:
            rows.append(_pair(m, baseline, metric, item_scores(samples, m, metric), base, settings,
                              st.is_binary(column)))
    items = {m: _item_frame(samples, m, baseline, metrics) for m in models}
    notes: list[str] = []
    if preferences is not None:
        for m in models:
            row, judged = _judge_pair(m, baseline, preferences[m], items[m], metrics, settings, judge_info or {})
            rows.append(row)
            notes += judged
    answers = {m: read for m in models if (read := _answers_read(items[m])) is not None}
    for m, (model_read, base_read) in answers.items():
        collapsed = tuple(t for t, r in ((m, model_read[1]), (baseline, base_read[1])) if r.collapsed)
        rows = [replace(r, collapsed=collapsed) if r.model == m else r for r in rows]
        if model_read[1].rate or base_read[1].rate:  # a degenerate answer: each metric decided with it first
            rows += [replace(_degeneration_first(m, baseline, metric, items[m], model_read[0], base_read[0],
                                                 settings), collapsed=collapsed) for metric in metrics]
    rows = _adjust(rows, correction)
    return Comparison(baseline, list(models), rows, items, settings, notes,
                      {m: (model_read[1], base_read[1]) for m, (model_read, base_read) in answers.items()})


def _answers_read(frame: pd.DataFrame) -> tuple[tuple[dict[int, bool], AnswersReport],
                                                 tuple[dict[int, bool], AnswersReport]] | None:
    """The model's and the baseline's answers of ``frame`` read for degeneration (the reference as each
    answer's), over the items both answered with text: each side's ``{item index: degenerate}`` and report;
    None where no item has two generated answers."""
    both = [(int(i), m, b, r if isinstance(r, str) else None)
            for i, m, b, r in zip(frame["index"], frame["model_output"], frame["baseline_output"], frame["reference"],
                                  strict=True) if isinstance(m, str) and isinstance(b, str)]
    if not both:
        return None
    references = [r for *_, r in both]

    def read(texts: list[str]) -> tuple[dict[int, bool], AnswersReport]:
        answers = Answers(texts, [None] * len(texts), degeneration.judge_answers(texts, references=references))
        return {i: answers.degenerate(k) for k, (i, *_) in enumerate(both)}, answers.report

    return read([m for _, m, _, _ in both]), read([b for _, _, b, _ in both])


def _degeneration_first(model: str, baseline: str, metric: str, frame: pd.DataFrame, model_bad: Mapping[int, bool],
                        base_bad: Mapping[int, bool], settings: Mapping[str, Any]) -> PairedMetric:
    """``metric``'s row with each item decided by the answer judge's rule
    (:func:`~qfnb.evaluation.stats.degeneration_first.decided`): degeneration first, then the higher score;
    its outcomes (1 a win, 0.5 a tie) go into ``frame`` as the row's item columns."""
    a: dict[int, list[float]] = {}
    b: dict[int, list[float]] = {}
    for i, ms, bs in zip(frame["index"], frame[f"model/{metric}"], frame[f"baseline/{metric}"], strict=True):
        if int(i) not in model_bad:
            continue
        scored = math.isfinite(ms) and math.isfinite(bs)
        outcome, _ = decided(model_bad[int(i)], base_bad[int(i)], float(ms) if scored else None,
                             float(bs) if scored else None, metric)
        a[int(i)], b[int(i)] = [outcome], [1 - outcome]
    name = metric + DEGENERATION_FIRST
    frame[f"model/{name}"] = [a[int(i)][0] if int(i) in a else float("nan") for i in frame["index"]]
    frame[f"baseline/{name}"] = [b[int(i)][0] if int(i) in b else float("nan") for i in frame["index"]]
    return replace(_pair(model, baseline, name, a, b, settings, False), kind="degeneration first",
                   test="sign test (permutation)")


def _check_models(samples: pd.DataFrame, models: Sequence[str], baseline: str) -> None:
    """Refuse a baseline or a model the result lacks, no model, or the baseline among the models."""
    tags = list(dict.fromkeys(str(t) for t in samples["llm"]))
    if baseline not in tags:
        raise invalid("baseline", f"{baseline!r} is not a model of this result (models: {tags})")
    if not models:
        raise invalid("models", f"nothing to compare with {baseline!r}: the result has no other model")
    for m in models:
        if m not in tags:
            raise invalid("models", f"{m!r} is not a model of this result (models: {tags})")
        if m == baseline:
            raise invalid("models", f"{m!r} is the baseline; compare it with another model")


def _check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse a correction, alpha, CI method, confidence or resample count out of range (the last three as
    :func:`~.stats.bootstrap_ci` does)."""
    if settings["correction"] not in CORRECTIONS:
        raise invalid("correction", f"choose from {list(CORRECTIONS)}, got {settings['correction']!r}")
    if not 0 < settings["alpha"] < 1:
        raise invalid("alpha", f"must be in (0, 1), got {settings['alpha']}")
    try:
        st.bootstrap_ci([0.0, 1.0], confidence=settings["confidence"], n_resamples=settings["n_resamples"],
                        method=settings["method"])
    except ValueError as exc:  # confidence / n_resamples / method named in the message
        name = str(exc).split(":", 1)[0]
        raise invalid(name, str(exc).split(":", 1)[-1].strip()) from None


def consistent(pref: Any) -> bool:
    """A pairwise verdict to decide on: readable in both orders, and the same in both."""
    readable = {"A", "B", "tie"}
    return pref.model_first in readable and pref.baseline_first in readable and not pref.position_bias


def _judge_pair(model: str, baseline: str, prefs: Mapping[int, Any], frame: pd.DataFrame, metrics: Sequence[str],
                settings: Mapping[str, Any], info: Mapping[str, Any]) -> tuple[PairedMetric, list[str]]:
    """The pairwise judge's row for ``model`` and its notes; its per-item verdicts go into ``frame``."""
    name = f"judge:{info.get('judge', 'pairwise')}"
    kept = {i: p for i, p in prefs.items() if consistent(p)}  # the decision uses only these
    a = {i: [(p.value + 1) / 2] for i, p in kept.items()}
    b = {i: [(1 - p.value) / 2] for i, p in kept.items()}
    row = replace(_pair(model, baseline, name, a, b, settings, False), kind="preference",
                  test="sign test (permutation)", excluded=len(prefs) - len(kept),
                  excluded_why="judged inconsistently (the verdict changed with the order, or a reply was unreadable)")
    frame[f"model/{name}"] = [a[i][0] if i in a else float("nan") for i in frame["index"]]
    frame[f"baseline/{name}"] = [b[i][0] if i in b else float("nan") for i in frame["index"]]
    frame["position_bias"] = [prefs[i].position_bias if i in prefs else None for i in frame["index"]]
    return row, judge_notes(model, baseline, name, prefs, frame, metrics, info)


def judge_notes(model: str, baseline: str, name: str, prefs: Mapping[int, Any], frame: pd.DataFrame,
                metrics: Sequence[str], info: Mapping[str, Any]) -> list[str]:
    """How the pairwise judge was run, its position bias, and its agreement with each reference metric."""
    biased = sum(1 for p in prefs.values() if p.position_bias)
    kept = sum(1 for p in prefs.values() if consistent(p))
    unread = len(prefs) - kept - biased
    share = f" ({kept / len(prefs):.0%})" if prefs else ""
    sees = "saw the reference" if info.get("uses_reference") else "did not see the reference"
    out = [f"{name} ({model} vs {baseline}): each pair judged in both orders; order-consistency {kept} of "
           f"{len(prefs)} pairs{share}, and the decision uses only those; {biased} of {len(prefs)} pairs changed "
           f"verdict with the order{f' and {unread} had an unreadable reply' if unread else ''} (left out); "
           f"rubric {info.get('rubric')} v{info.get('rubric_version')} #{info.get('rubric_hash')}; the judge {sees}."]
    sign = {i: p.value for i, p in prefs.items() if p.value != 0}
    for metric in metrics:
        diff = dict(zip(frame["index"], frame[f"model/{metric}"] - frame[f"baseline/{metric}"], strict=True))
        both = [i for i in sign if i in diff and math.isfinite(diff[i]) and diff[i] != 0]
        if both:
            agree = sum(1 for i in both if (diff[i] > 0) == (sign[i] > 0))
            out.append(f"{name} agrees with {metric} on {agree} of {len(both)} items where both pick a winner.")
    return out

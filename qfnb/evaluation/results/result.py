"""``EvaluationResult``: metrics per model, per-sample table, HTML report and a comparison chart."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from qfnb._core.runtime import sync
from qfnb.protocol.console import textmetrics as tm

from ..evaluators.manual import ManualEvaluator
from ..evaluators.pairwise import check_not_candidate
from ..stats import paired as st
from .compare import compare_samples
from .result_view import metrics_figure, result_html
from .stability import stability

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from qfnb.dataset import Dataset

    from ..base import LocalEvaluator
    from .compare import Comparison
    from .stability import Stability

#: Columns of the long per-sample frame before the metric columns.
BASE_COLUMNS = ["llm", "index", "input", "reference", "output", "error"]
_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


def summarize_all(evaluators: Sequence[LocalEvaluator], columns: Sequence[Sequence[str]],
                  samples: pd.DataFrame, tags: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{tag: {metric: value}}`` from each evaluator's ``summarize`` over its own columns."""
    metrics: dict[str, dict[str, Any]] = {}
    for tag in tags:
        rows = samples[samples["llm"] == tag]
        out: dict[str, Any] = {}
        for evaluator, cols in zip(evaluators, columns, strict=True):
            frame = rows[["input", "reference", "output", *cols]].reset_index(drop=True)
            out.update(evaluator.summarize(frame) or {})
        metrics[tag] = out
    return metrics


def _scalar(value: Any) -> float | None:
    """A metric value for the table: numbers as float, ``"16.5%"`` as 0.165, others dropped."""
    if isinstance(value, int | float):  # a bool too
        return float(value)
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m:
            return float(m.group(1)) / 100.0
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _per_item(rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per item: with repeats, the first repeat's output and each numeric metric's mean."""
    if "repeat" not in rows.columns:
        return rows.set_index("index")
    first = rows.sort_values("repeat", kind="stable").drop_duplicates("index").set_index("index")
    for m in metrics:
        values = pd.to_numeric(rows[m], errors="coerce")
        if values.notna().any():
            first[m] = values.groupby(rows["index"]).mean()
    return first


def _rescored(samples: pd.DataFrame, wanted: Sequence[str] | None,
              reported: Mapping[str, Mapping[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """Per-item text metrics for a result that has outputs only (a platform rule evaluation),
    computed as the platform computes them: the metrics it reported, or ``wanted``."""

    def rouge_of(name: str) -> Callable[[Any, Any], float]:
        return lambda r, o: tm.rouge(r, o)[name]

    scorers: dict[str, Callable[[Any, Any], float]] = {
        "accuracy": tm.exact_match, "bleu4": tm.sentence_bleu4,
        **{name: rouge_of(name) for name in tm.ROUGE_TYPES.values()}}
    names = list(wanted) if wanted is not None else [
        m for m in scorers if any(m in v for v in reported.values())]
    unknown = [m for m in names if m not in scorers]
    if unknown:
        raise ValueError(f"metrics: {unknown} cannot be scored per item here (choose from {list(scorers)})")
    if not names:
        raise ValueError("metrics: this result has no per-item scores to compare")
    out = samples.copy()
    ok = [not (isinstance(e, str) and e) for e in out["error"]]
    for name in names:
        out[name] = [scorers[name](r, o) if good else None
                     for r, o, good in zip(out["reference"], out["output"], ok, strict=True)]
    return out, names


class EvaluationResult:
    """The outcome of an evaluation.

    * ``metrics`` — ``{llm_tag: {metric: value}}`` (platform reports keep their raw fields).
    * ``metrics_df`` — one row per model, one column per numeric metric.
    * ``samples`` — long per-sample frame: ``llm, index, input, reference, output, error, <metrics>``.
    * ``samples_df`` — wide per-sample frame: ``input, reference`` then ``{tag}/output`` and
      ``{tag}/{metric}`` for every model.
    * ``result_dataset`` — ``samples`` as a qfnb ``Dataset``.
    """

    def __init__(self, metrics: Mapping[str, Mapping[str, Any]], samples: pd.DataFrame | None = None, *,
                 evaluators: Sequence[LocalEvaluator] = (), metric_columns: Sequence[Sequence[str]] = (),
                 task_id: str | None = None, state: str | None = None) -> None:
        self.metrics: dict[str, dict[str, Any]] = {k: dict(v) for k, v in metrics.items()}
        self.samples: pd.DataFrame = samples if samples is not None else pd.DataFrame(columns=BASE_COLUMNS)
        self.task_id = task_id
        self.state = state
        self._evaluators = list(evaluators)
        self._metric_columns = [list(c) for c in metric_columns]
        #: ``{tag: identity}`` of the models run (what a judge must not be)
        self.identities: dict[str, str] = {}
        #: what each judge was: model, rubric name, version and hash, whether it saw the reference
        self.judges: list[dict[str, Any]] = [ev.judge_info() for ev in self._evaluators if hasattr(ev, "judge_info")]
        #: a sequential run's decision, item order and stopping point (``SequentialRecord``), or None
        self.sequential: Any = None
        #: the metric words a notebook run asked for (re-showing the result shows only those), or None
        self.shown_metrics: list[str] | None = None
        #: a pairwise judge's verdicts already asked: ``{(judge, model, baseline): {index: Preference}}``
        self._preferences: dict[tuple[Any, str, str], dict[int, Any]] = {}

    @classmethod
    def combine(cls, results: Mapping[str, EvaluationResult]) -> EvaluationResult:
        """One result from several (e.g. ``{"base": r1, "tuned": r2}``, one run each, maybe by the
        platform's evaluators): models are renamed to the keys (``key/tag`` when a result holds
        several), so :meth:`compare` can pair them item by item."""
        if not results:
            raise ValueError("results: nothing to combine")
        metrics: dict[str, dict[str, Any]] = {}
        frames, columns, evaluators = [], [], []
        for name, res in results.items():
            if not isinstance(res, EvaluationResult):
                raise ValueError(f"results: {name!r} is a {type(res).__name__}, not an EvaluationResult")
            tags = res.llm_tags or list(dict.fromkeys(res.samples["llm"]))
            new = {t: str(name) if len(tags) == 1 else f"{name}/{t}" for t in tags}
            metrics.update({new[t]: dict(res.metrics.get(t, {})) for t in tags})
            frames.append(res.samples.assign(llm=res.samples["llm"].map(lambda t, m=new: m.get(t, t))))
            for ev, cols in zip(res._evaluators, res._metric_columns, strict=False):
                if cols not in columns:
                    evaluators.append(ev)
                    columns.append(cols)
        out = cls(metrics, pd.concat(frames, ignore_index=True), evaluators=evaluators, metric_columns=columns)
        out.identities = {k: v for res in results.values() for k, v in res.identities.items()}
        return out

    @classmethod
    def concat(cls, parts: Sequence[EvaluationResult]) -> EvaluationResult:
        """One result from runs of the same models and evaluators on different items (their samples'
        ``index`` already the dataset's), its metrics summarised again over every item."""
        if not parts:
            raise ValueError("parts: nothing to concatenate")
        first = parts[0]
        samples = pd.concat([p.samples for p in parts], ignore_index=True)
        tags = first.llm_tags
        metrics = summarize_all(first._evaluators, first._metric_columns, samples, tags)
        out = cls(metrics, samples, evaluators=first._evaluators, metric_columns=first._metric_columns)
        out.identities = dict(first.identities)
        out.judges = list(first.judges)
        return out

    # -- tables ------------------------------------------------------------------------------
    @property
    def llm_tags(self) -> list[str]:
        return list(self.metrics)

    @property
    def metric_names(self) -> list[str]:
        """Metric columns of the per-sample table (in evaluator order)."""
        return [c for cols in self._metric_columns for c in cols]

    @property
    def metrics_df(self) -> pd.DataFrame:
        rows = {tag: {k: _scalar(v) for k, v in m.items()} for tag, m in self.metrics.items()}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame = frame.dropna(axis=1, how="all").astype(float)
        frame.index.name = "llm"
        return frame

    @property
    def samples_df(self) -> pd.DataFrame:
        s = self.samples
        if s.empty:
            return pd.DataFrame(columns=["input", "reference"])
        base = s.drop_duplicates("index").set_index("index")[["input", "reference"]]
        parts = [base]
        for tag in dict.fromkeys(s["llm"]):
            rows = _per_item(s[s["llm"] == tag], self.metric_names)
            cols = ["output", *self.metric_names]
            if rows["error"].notna().any():
                cols.insert(1, "error")
            parts.append(rows[cols].rename(columns=lambda c, t=tag: f"{t}/{c}"))
        wide = pd.concat(parts, axis=1).sort_index()
        wide.index.name = "index"
        return wide

    @property
    def result_dataset(self) -> Dataset | None:
        """The per-sample rows as a qfnb ``Dataset`` (``None`` for a platform-only result)."""
        if self.samples.empty:
            return None
        from qfnb.dataset import Dataset  # deferred: `import qfnb.evaluation` does without it (23 modules)

        return Dataset.create_from_pyobj(self.samples.to_dict("records"))

    def refresh(self) -> EvaluationResult:
        """Fold scores submitted to manual evaluators since the run into samples and metrics."""

        changed = False
        for evaluator in self._evaluators:
            if not isinstance(evaluator, ManualEvaluator):
                continue
            for pos, (tag, index) in enumerate(zip(self.samples["llm"], self.samples["index"], strict=True)):
                scores = evaluator.score_of(tag, int(index))
                for dim, value in (scores or {}).items():
                    if value is not None:
                        self.samples.iat[pos, self.samples.columns.get_loc(dim)] = value
                        changed = True
        if changed:
            fresh = summarize_all(self._evaluators, self._metric_columns, self.samples, self.llm_tags)
            for tag, values in fresh.items():
                self.metrics[tag].update(values)
        return self

    # -- comparison ----------------------------------------------------------------------------
    @property
    def item_metrics(self) -> list[str]:
        """Per-item numeric metric columns (what :meth:`compare` can compare)."""
        out = []
        for name in self.metric_names or [c for c in self.samples.columns if c not in BASE_COLUMNS]:
            if name == "repeat" or name not in self.samples.columns:
                continue
            values = pd.to_numeric(self.samples[name], errors="coerce")
            if values.notna().any() and values.notna().sum() >= self.samples[name].notna().sum():
                out.append(name)
        return out

    def score_intervals(self, *, confidence: float = 0.95, n_resamples: int = 10_000) -> pd.DataFrame:
        """Each model's own mean on each per-item metric with its bootstrap CI (the items resampled; a
        repeated item counts once, at its repeats' mean): rows ``(model, metric)``, columns ``mean``,
        ``low``, ``high``, ``n``. A model with fewer than 2 scored items has no interval (NaN)."""
        rows = []
        for tag in self.llm_tags:
            mine = self.samples[self.samples["llm"] == tag]
            for name in self.item_metrics:
                per_item = pd.to_numeric(mine[name], errors="coerce").groupby(mine["index"]).mean().dropna()
                mean = low = high = float("nan")
                if len(per_item):
                    mean = float(per_item.mean())
                if len(per_item) >= 2:
                    ci = st.bootstrap_ci(per_item.to_numpy(), confidence=confidence, n_resamples=n_resamples)
                    low, high = ci.low, ci.high
                rows.append({"model": tag, "metric": name, "mean": mean, "low": low, "high": high, "n": len(per_item)})
        columns = ["model", "metric", "mean", "low", "high", "n"]
        return pd.DataFrame(rows, columns=columns).set_index(["model", "metric"])

    def compare(self, a: str | Sequence[str] | None = None, b: str | None = None, *,
                metrics: Sequence[str] | None = None, confidence: float = 0.95, n_resamples: int = 10_000,
                seed: int = 0, method: str = "expanded", alpha: float = 0.05,
                correction: str = "holm", judge: Any = None) -> Comparison:
        """Compare model ``a`` (or several) with the baseline ``b``, item by item (``a`` − ``b``).

        ``b`` defaults to the first model, ``a`` to every other one; the tests are :mod:`.compare`'s. A
        result with outputs but no per-item scores (a platform rule evaluation) is scored per item
        with the same text metrics as the platform.
        ``judge`` (a :class:`~.pairwise.PairwiseJudge`) adds a pairwise row per model: each pair
        judged in both orders, a disagreement between the orders a tie.
        """

        tags = self.llm_tags if self.metrics else list(dict.fromkeys(self.samples["llm"]))
        baseline = b if b is not None else (tags[0] if tags else "")
        models = [t for t in tags if t != baseline] if a is None else [a] if isinstance(a, str) else list(a)
        samples = self.samples
        names = list(metrics) if metrics is not None else self.item_metrics
        if not self.item_metrics and not samples.empty:
            samples, names = _rescored(samples, metrics, self.metrics)
        missing = [m for m in names if m not in samples.columns]
        if missing:
            raise ValueError(f"metrics: no per-item column for {missing} (per-item metrics: {self.item_metrics})")
        prefs = None
        if judge is not None:
            check_not_candidate(judge, [(t, self.identities.get(t)) for t in [baseline, *models]])
            prefs = {m: self.preferences(judge, m, baseline) for m in models}
        cmp = compare_samples(samples, names, models, baseline, confidence=confidence, n_resamples=n_resamples,
                              seed=seed, method=method, alpha=alpha, correction=correction,  # type: ignore[arg-type]
                              preferences=prefs, judge_info=judge.judge_info() if judge is not None else None)
        cmp.notes += _corpus_notes(cmp, self.metrics)
        for j in self.judges:
            cmp.notes.append(f"judge {j.get('judge')} ({j.get('metric')}): rubric {j.get('rubric')} "
                             f"v{j.get('rubric_version')} #{j.get('rubric_hash')}, "
                             f"{'saw' if j.get('uses_reference') else 'did not see'} the reference.")
        for row in self.judge_agreement().itertuples(index=False):
            if row.spearman is not None and pd.notna(row.spearman):
                cmp.notes.append(f"{row.judge_metric} agrees with {row.metric}: Spearman {row.spearman:.2f} "
                                 f"over {row.n} answers.")
        return cmp

    def preferences(self, judge: Any, model: str, baseline: str) -> dict[int, Any]:
        """A pairwise judge's (:class:`~.pairwise.PairwiseJudge`) verdict on ``model``'s answer against
        ``baseline``'s, item by item (the first repeat; both orders asked): ``{index: Preference}``, an
        item that failed on either side left out. Asked once per judge and pair (:meth:`compare` and
        ``%qfeval --pairwise --label`` share the verdicts)."""
        key = (judge, model, baseline)
        if key not in self._preferences:
            check_not_candidate(judge, [(t, self.identities.get(t)) for t in (baseline, model)])
            self._preferences[key] = sync.run(self._apreferences(judge, model, baseline))
        return self._preferences[key]

    async def _apreferences(self, judge: Any, model: str, baseline: str) -> dict[int, Any]:
        samples = self.samples
        first = samples.sort_values("repeat") if "repeat" in samples.columns else samples
        first = first[~first["error"].map(lambda e: isinstance(e, str) and bool(e))].drop_duplicates(["llm", "index"])
        base = first[first["llm"] == baseline].set_index("index")
        other = first[first["llm"] == model].set_index("index")
        keys = [int(i) for i in base.index if i in other.index]
        prefs = await judge.apreferences([(base.at[i, "input"], base.at[i, "reference"], other.at[i, "output"],
                                           base.at[i, "output"]) for i in keys])
        return dict(zip(keys, prefs, strict=True))

    def judge_agreement(self) -> pd.DataFrame:
        """Each judge score's Spearman correlation with each reference metric over every judged
        answer (``judge_metric``, ``metric``, ``spearman``, ``n``)."""

        judged = [j["metric"] for j in self.judges if "metric" in j]
        rows = []
        for jm in judged:
            if jm not in self.samples.columns:
                continue
            for m in self.item_metrics:
                if m in judged:
                    continue
                pair = pd.DataFrame({"j": pd.to_numeric(self.samples[jm], errors="coerce"),
                                     "m": pd.to_numeric(self.samples[m], errors="coerce")}).dropna()
                rho = st.spearman(pair["j"], pair["m"]) if len(pair) >= 2 else None
                rows.append({"judge_metric": jm, "metric": m, "spearman": rho, "n": len(pair)})
        return pd.DataFrame(rows, columns=["judge_metric", "metric", "spearman", "n"])

    @property
    def repeats(self) -> int:
        """How many times each item was answered (1 without ``repeats``)."""
        if "repeat" not in self.samples.columns or self.samples.empty:
            return 1
        return int(self.samples["repeat"].max()) + 1

    def stability(self, *, metrics: Sequence[str] | None = None, tolerance: float = 0.1,
                  confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> Stability:
        """Agreement across repeats: per-item agreement and spread, the CI with the repeat
        variance, the items answered inconsistently (see :mod:`qfnb.evaluation.results.stability`)."""

        return stability(self.samples, list(metrics) if metrics is not None else self.item_metrics,
                         tolerance=tolerance, confidence=confidence, n_resamples=n_resamples, seed=seed)

    # -- display (:mod:`.result_view`) --------------------------------------------------------
    def plot(self, metrics: Sequence[str] | None = None) -> Figure:
        """A matplotlib ``Figure``: one panel per metric, one bar per model (no pyplot state)."""
        return metrics_figure(self.metrics_df, metrics)

    def _repr_html_(self, max_rows: int = 20) -> str:
        samples = None if self.samples.empty else self.samples_df
        return result_html(self.metrics_df, samples, models=len(self.metrics), task_id=self.task_id,
                           state=self.state, max_rows=max_rows)

    def __repr__(self) -> str:
        head = f"EvaluationResult({len(self.metrics)} model(s), {self.samples['index'].nunique()} sample(s)"
        if self.task_id:
            head += f", task={self.task_id}"
        if self.state:
            head += f", state={self.state}"
        frame = self.metrics_df
        body = frame.to_string(float_format=lambda v: f"{v:.4f}") if not frame.empty else "no metrics"
        return f"{head})\n{body}"


def _corpus_notes(cmp: Comparison, table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A metric whose table value is not its item scores' mean (corpus BLEU): say which means were compared."""
    notes = []
    for row in cmp.rows:
        raw = [(table.get(t) or {}).get(row.metric) for t in (row.model, row.baseline)]
        shown = [float(v) for v in raw if isinstance(v, int | float)]
        if len(shown) < 2 or all(abs(a - b) < 5e-5 for a, b in zip(shown, (row.mean_model, row.mean_baseline),
                                                                      strict=True)):
            continue
        notes.append(f"{row.metric}: compared item by item, on the mean of per-item scores ({row.model} "
                     f"{row.mean_model:.4f}, {row.baseline} {row.mean_baseline:.4f}); the table's {row.metric} "
                     f"is computed over the whole corpus ({shown[0]:.4f}, {shown[1]:.4f}).")
    return notes

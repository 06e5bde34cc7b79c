"""``%qfeval … --judge --label``: a person labels the judged answers the label queue asks for, one at a
time, until the interval says enough (:class:`qfnb.evaluation.LabelQueue`).

:class:`LabelSession` is the widget's model (no ipywidgets: tested without a browser): the items of a
result, the queue, the labels kept in the evaluation's answer store under the run's key (so a
restarted kernel continues and Restart & Run All replays them, asking nothing), and the sentence
that says whether the labels are enough. One model: the answer and the reference are shown and the
label is a score on the judge's scale; two models: both answers, in an order drawn per item, and the
label is which is better. :class:`LabelWidget` draws it; every text from a model or the data set
reaches HTML through :func:`qfnb.resources.safe_html.escape`."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from qfnb.evaluation.data import item_scores
from qfnb.evaluation.runs.answers import AnswerStore
from qfnb.evaluation.stats.active import LabelQueue
from qfnb.notebook._ipython import HTML
from qfnb.notebook.evaluation.options import EvalArgsError
from qfnb.notebook.render import theme as _theme
from qfnb.notebook.render._ipywidgets import HBox, SafeHTML, VBox
from qfnb.protocol.console.textmetrics import as_text
from qfnb.resources.safe_html import clean, escape

log = logging.getLogger("qfnb.notebook.evaluation.labelling")

#: one model: the interval a person labels down to, as a share of the judge's scale
WIDTH_SHARE = 0.1
#: the queue's seed: the same items are asked in every kernel (its state is saved anyway)
SEED = 94
#: a pairwise judge's scale: its verdict and the person's label, ``-1`` (b better) to ``+1`` (a better)
PREFERENCE_SCALE = (-1.0, 1.0)


@dataclass(frozen=True)
class LabelItem:
    """One judged item as the person sees it: its position, prompt, reference and answers (one per model,
    in the models' order)."""

    index: int
    prompt: str
    reference: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class LabelChoice:
    """A label button: its text and the label it records."""

    text: str
    value: float


class LabelSession:
    """The queue over a result's judged items, its labels saved in ``store`` under ``key``."""

    def __init__(self, items: Sequence[LabelItem], queue: LabelQueue, *, tags: Sequence[str], store: AnswerStore,
                 key: str, width: float | None, null: float | None, scale: tuple[float, float]) -> None:
        self.items = list(items)
        self.queue = queue
        self.tags = tuple(tags)
        self.store = store
        self.key = key
        self.width = width
        self.null = null
        self.scale = scale
        #: (labels, low, high) after each label of this session (the interval shrinking)
        self.history: list[tuple[int, float, float]] = []
        self._note()

    # -- building ------------------------------------------------------------------------------------------
    @classmethod
    def of_result(cls, result: Any, tags: Sequence[str], *, metric: str, scale: tuple[float, float],
                  store: AnswerStore, width: float | None = None, confidence: float = 0.95,
                  known: Mapping[str, Mapping[int, float]] | None = None,
                  preferences: Mapping[int, Any] | None = None) -> LabelSession:
        """The session over ``result``'s items judged on ``metric`` (``scale``: the judge's lowest and
        highest score) for one model or a pair (``tags``: ``(a, b)``, ``b`` the baseline). An item
        the judge failed on keeps its place, judged at the middle of the scale with the most doubt
        (the estimate stays unbiased). ``known``: ``--calibrate``'s labels (``{tag: {item: label}}``),
        free wherever the queue asks for them. ``preferences``: a pair judged by a pairwise judge
        (``{index: Preference}``, ``a`` against ``b``; ``metric`` names that judge): its verdicts are
        what the labels correct, most doubtful where its two orders disagree, an item it did not judge
        a tie with the most doubt."""
        if len(tags) not in (1, 2):
            raise EvalArgsError(f"--label labels one model, or a pair (--models A,B or --compare BASE with one "
                                f"other model); got {len(tags)} models")
        if preferences is not None and len(tags) != 2:
            raise EvalArgsError(f"--pairwise --label labels a pair of models; got {len(tags)}")
        lo, hi = scale
        samples = result.samples
        base = samples.drop_duplicates("index").set_index("index").sort_index()
        positions = [int(i) for i in base.index]
        if len(positions) < 2:
            raise EvalArgsError("--label needs at least 2 judged items")
        answers, scores, spreads = zip(*(_judged(samples, tag, metric, positions) for tag in tags), strict=True)
        spread = np.sum(spreads, axis=0) / (hi - lo)  # repeated judgements that differ: more doubt
        items = [LabelItem(i, as_text(base.at[i, "input"]), as_text(base.at[i, "reference"]),
                           tuple(a[k] for a in answers)) for k, i in enumerate(positions)]
        failed = np.any([np.isnan(s) for s in scores], axis=0)
        mid = (lo + hi) / 2.0
        filled = [np.where(failed, mid, s) for s in scores]
        if preferences is not None:
            verdicts = [preferences.get(i) for i in positions]
            queue = LabelQueue.of_preferences(verdicts, confidence, names=(tags[0], tags[1]), seed=SEED)
            filled, null = [queue.scores], 0.0
        elif len(tags) == 1:
            q = (filled[0] - lo) / (hi - lo)
            doubt = np.where(failed, 0.5, np.sqrt(np.clip(q * (1 - q), 0, None)) + spread)
            queue = LabelQueue(filled[0], doubt, confidence, bounds=(lo, hi), seed=SEED)
            null, width = None, width if width is not None else WIDTH_SHARE * (hi - lo)
        else:
            diff = (filled[0] - filled[1]) / (hi - lo)
            doubt = np.where(failed, 0.5, np.sqrt(np.clip((1 + diff) * (1 - diff) / 4, 0, None)) + spread)
            queue = LabelQueue.paired(filled[0], filled[1], doubt, confidence, bounds=(lo, hi),
                                      names=(tags[0], tags[1]), seed=SEED)
            null = 0.0
        key = session_key(items, tags, metric, filled, confidence)
        saved = store.label_state(key)
        if saved is not None:
            queue.restore(saved)
        for index, label in _known(known or {}, tags, positions, scale).items():
            if index not in queue.labels:
                queue.add(index, label)
        return cls(items, queue, tags=tags, store=store, key=key, width=width, null=null, scale=(lo, hi))

    # -- what the person sees --------------------------------------------------------------------------------
    @property
    def paired(self) -> bool:
        return len(self.tags) == 2

    @property
    def decided(self) -> bool:
        return self.queue.done(width=self.width, null=self.null)

    @property
    def current(self) -> LabelItem | None:
        """The item to label now (None once every item is labelled)."""
        found = self.queue.next(1)
        return self.items[found[0]] if found else None

    def order(self, item: LabelItem) -> tuple[int, int]:
        """The order a pair's answers are shown in (drawn per item, the same in every kernel): the
        model shown first, then the other (positions in ``tags``)."""
        first = int(hashlib.sha256(f"{self.key}:{item.index}".encode()).hexdigest(), 16) % 2
        return first, 1 - first

    def choices(self, item: LabelItem) -> list[LabelChoice]:
        """The buttons: one model, each score of the judge's scale; a pair, answer 1 / tie / answer 2
        (recorded as +1 when ``a`` is better, −1 when ``b`` is)."""
        if not self.paired:
            lo, hi = self.scale
            steps = [lo + k for k in range(int(hi - lo) + 1)] if float(hi - lo).is_integer() and hi - lo <= 10 \
                else [lo, (lo + hi) / 2, hi]
            return [LabelChoice(f"{v:g}", float(v)) for v in steps]
        first, _ = self.order(item)
        sign = 1.0 if first == 0 else -1.0  # answer 1 is a's: "answer 1 is better" is +1
        return [LabelChoice("answer 1 is better", sign), LabelChoice("tie", 0.0),
                LabelChoice("answer 2 is better", -sign)]

    def label(self, item: LabelItem, value: float) -> None:
        """Record the person's label of ``item`` and save the queue (a restarted kernel continues)."""
        self.queue.add(item.index, value)
        self.store.save_label_state(self.key, self.queue.state())
        self._note()

    def _note(self) -> None:
        est = self.queue.estimate()
        self.history.append((self.queue.n_labelled, est.low, est.high))

    @property
    def verdict(self) -> str:
        """What the labels say: ``labels enough: Tiny-Chat wins, 95% CI …; 38 labels of 500 items``."""
        said = self.queue.verdict(width=self.width, null=self.null)
        if self.paired:
            return f"{said} (net preference of {self.tags[0]} over {self.tags[1]}: +1 always {self.tags[0]}, " \
                   f"-1 always {self.tags[1]})"
        return said

    def to_html(self) -> str:
        """The item to label and the interval, as static HTML (also the widget's two panes)."""
        return clean(self.item_html() + self.status_html())

    def item_html(self) -> str:
        item = self.current
        if item is None:
            return '<div class="qfnb-label-item"><p>Every item is labelled.</p></div>'
        wrap = "white-space:pre-wrap;overflow-wrap:anywhere"
        box = f"border:1px solid {_theme.TEXT_MUTED};padding:6px;margin:4px 0;{wrap}"
        head = (f"<p><b>Item {item.index}</b> — {self.queue.n_labelled} labelled so far. "
                + ("Which answer is better?" if self.paired else "Score the answer on the judge's scale.") + "</p>")
        parts = [f'<div class="qfnb-label-prompt" style="{box}"><b>prompt</b><br>{escape(item.prompt)}</div>']
        if item.reference:
            parts.append(f'<div class="qfnb-label-reference" style="{box}"><b>reference</b><br>'
                         f"{escape(item.reference)}</div>")
        shown = self.order(item) if self.paired else (0,)
        for k, which in enumerate(shown, start=1):
            title = f"answer {k}" if self.paired else "answer"
            parts.append(f'<div class="qfnb-label-answer" style="{box}"><b>{title}</b><br>'
                         f"{escape(item.answers[which])}</div>")
        return f'<div class="qfnb-label-item" style="color:{_theme.TEXT}">{head}{"".join(parts)}</div>'

    def status_html(self) -> str:
        lo, hi = self.queue.bounds
        est = self.queue.estimate()
        left, right = ((v - lo) / (hi - lo) * 100 for v in (est.low, est.high))
        mark = ""
        if self.null is not None:
            at = (self.null - lo) / (hi - lo) * 100
            mark = (f'<div style="position:absolute;left:{at:.1f}%;width:2px;height:14px;top:-2px;'
                    'background:#d33"></div>')
        bar = (f'<div class="qfnb-label-bar" title="{escape(f"{est.low:.3g} to {est.high:.3g}")}" '
               'style="position:relative;height:10px;margin:6px 0">'
               f'<div style="position:absolute;left:0;width:100%;height:10px;background:{_theme.TEXT_MUTED};'
               'opacity:0.25"></div>'
               f'<div style="position:absolute;left:{left:.1f}%;width:{max(right - left, 0.5):.1f}%;height:10px;'
               f'background:{_theme.TEXT}"></div>{mark}</div>')
        first = self.history[0]
        shrink = (f"interval {first[2] - first[1]:.3g} wide at {first[0]} labels, now {est.high - est.low:.3g}"
                  if len(self.history) > 1 else f"interval {est.high - est.low:.3g} wide")
        cls, accent = (("qfnb-label-verdict", "border-left:4px solid #2a9d5c;padding-left:6px") if self.decided
                       else ("qfnb-label-open", ""))
        return (f'<div class="qfnb-label-status" style="color:{_theme.TEXT}">{bar}'
                f'<p class="{cls}" style="{accent}"><b>{escape(self.verdict)}</b></p>'
                f'<p style="color:{_theme.TEXT_MUTED}">{escape(shrink)}; valid however often you look</p></div>')

    def __repr__(self) -> str:
        return f"LabelSession({self.verdict})"


def _judged(samples: pd.DataFrame, tag: str, metric: str,
            positions: Sequence[int]) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64]]:
    """One model's answer to each item (its first repeat's), the judge's mean score over the repeats
    (NaN where it gave none) and their spread (0 for one judgement)."""
    rows = samples[samples["llm"] == tag].drop_duplicates("index").set_index("index")
    answers = [as_text(rows.at[i, "output"]) if i in rows.index else "" for i in positions]
    judged = item_scores(samples, tag, metric) if metric in samples.columns else {}
    mean = np.array([float(np.mean(judged[i])) if judged.get(i) else math.nan for i in positions])
    spread = np.array([float(np.std(judged[i])) if judged.get(i) else 0.0 for i in positions])
    return answers, mean, spread


def _known(known: Mapping[str, Mapping[int, float]], tags: Sequence[str], positions: Sequence[int],
           scale: tuple[float, float]) -> dict[int, float]:
    """``--calibrate``'s labels as the queue's: one model's scores, or a pair's preference (the sign of the
    difference of the two scores) where both are labelled."""
    inside = set(positions)
    if len(tags) == 1:
        return {int(i): float(v) for i, v in known.get(tags[0], {}).items() if i in inside}
    a, b = known.get(tags[0], {}), known.get(tags[1], {})
    return {int(i): float(np.sign(a[i] - b[i])) for i in a if i in b and i in inside}


def session_key(items: Sequence[LabelItem], tags: Sequence[str], metric: str, scores: Sequence[Any],
                confidence: float) -> str:
    """The evaluation a queue belongs to: its models, items, answers, judge scores and confidence."""
    shown = [[i.index, i.prompt, i.reference, list(i.answers)] for i in items]
    blob = json.dumps([list(tags), metric, confidence, shown, [[round(float(v), 9) for v in s] for s in scores]],
                      ensure_ascii=False)
    return "label:" + hashlib.sha256(blob.encode()).hexdigest()


class LabelWidget:
    """The session drawn: the item, the label buttons, the interval and the verdict (ipywidgets). The
    buttons stay the same from item to item (their labels depend only on the kind of session); a click
    labels the item asked now, so a click can never land on an item already gone."""

    def __init__(self, session: LabelSession) -> None:
        import ipywidgets  # deferred: the widget exists only in a kernel's display

        self.session = session
        self._ipywidgets = ipywidgets
        self.item = SafeHTML()
        self.item.add_class("qfnb-label-pane")
        first = session.current
        buttons = []
        for k, choice in enumerate(session.choices(first) if first is not None else []):
            button = ipywidgets.Button(description=choice.text, layout=ipywidgets.Layout(width="auto"))
            button.add_class("qfnb-label-choice")
            button.on_click(lambda _, k=k: self._clicked(k))
            buttons.append(button)
        self.buttons = HBox(buttons)
        self.status = SafeHTML()
        self.view = VBox([self.item, self.buttons, self.status])
        self.view.add_class("qfnb-label-widget")
        self.refresh()

    def refresh(self) -> None:
        """Show the next item and the interval now (no buttons once every item is labelled)."""
        self.item.value = self.session.item_html()
        self.status.value = self.session.status_html()
        if self.session.current is None:
            self.buttons.children = ()

    def _clicked(self, k: int) -> None:
        """The ``k``-th button: its label of the item asked now."""
        item = self.session.current
        if item is None:
            return
        self.session.label(item, self.session.choices(item)[k].value)
        self.refresh()

    def bundle(self, html: str) -> dict[str, Any]:
        """The widget under ``html`` (the report, also the static fallback of a saved notebook)."""
        report = self._ipywidgets.Output()
        report.append_display_data(HTML(html))
        box = VBox([report, self.view])
        return dict(box._repr_mimebundle_() or {})

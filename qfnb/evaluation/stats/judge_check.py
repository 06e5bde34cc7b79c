"""A score judge checked against the user's labels on a few items of a result: a verdict (whether its
scores can be read item by item, only through the calibrated mean, or not at all), the agreement with a
CI, which labels were used and why others were dropped, then each model's mean (and the difference with
a baseline) with a prediction-powered CI."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._errors import invalid
from ..data import item_scores
from .calibrate import Agreement, CalibratedMean, agreement, calibrated_difference, calibrated_mean

#: fewer labels than this give no agreement figure
MIN_LABELS = 4
#: the agreement's lower CI bound from which the judge's scores can be read item by item (Landis & Koch's
#: "substantial" for kappa; a strong rank correlation for Spearman)
PER_ITEM_AGREEMENT = 0.6


class Use(enum.StrEnum):
    """What a verdict allows of a judge's scores (the value: as its sentence says it)."""

    PER_ITEM = "can be used per item"
    MEAN_ONLY = "can be used only through the calibrated mean"
    NOT_AT_ALL = "should not be used"



@dataclass(frozen=True)
class LabelUse:
    """Which of the user's labels a check used, and why the others were dropped."""

    given: int
    used: list[int]
    #: ``{reason: [item index]}``: "the judge's call failed", "not an item of this result"
    dropped: dict[str, list[int]]

    @property
    def sentence(self) -> str:
        text = f"{len(self.used)} of your {self.given} labels used"
        if self.dropped:
            why = "; ".join(f"{len(items)} dropped because {reason} (items {_items(items)})"
                            for reason, items in self.dropped.items())
            text += f"; {why}"
        return text


@dataclass(frozen=True)
class Verdict:
    """Whether the judge (``judge``: its model) scoring ``metric`` can be used for the answers of the
    model ``tag``, and why: data a report shows first (:attr:`sentence`) and tabulates (:func:`verdict_frame`)."""

    tag: str
    judge: str
    metric: str
    use: Use
    reason: str

    @property
    def sentence(self) -> str:
        return f"verdict: judge {self.judge} on {self.metric} for {self.tag} {self.use}: {self.reason}"


def verdict_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per verdict: ``model``, ``judge``, ``metric``, ``use`` (the :class:`Use` values, an
    ordered categorical from the most allowed) and ``reason``."""
    frame = pd.DataFrame([(v.tag, v.judge, v.metric, v.use.value, v.reason) for v in verdicts],
                         columns=["model", "judge", "metric", "use", "reason"])
    frame["use"] = pd.Categorical(frame["use"], categories=[u.value for u in Use], ordered=True)
    return frame


def _items(indices: list[int], shown: int = 8) -> str:
    head = ", ".join(str(i) for i in indices[:shown])
    return head + (f", … ({len(indices) - shown} more)" if len(indices) > shown else "")


def verdict(tag: str, agr: Agreement | None, labels: LabelUse, *, judge: str, metric: str) -> Verdict:
    """Per item when the agreement's whole CI is at least :data:`PER_ITEM_AGREEMENT`; only through the
    calibrated mean when it is surely positive but weaker (prediction-powered inference corrects the
    mean with the labels; single scores stay unreliable); not at all when the CI reaches 0 or below,
    or too few labels could be used."""
    if agr is None:
        use, reason = Use.NOT_AT_ALL, (f"only {len(labels.used)} usable label(s), at least {MIN_LABELS} are needed "
                                       f"to measure agreement ({labels.sentence})")
    elif agr.value is None or agr.low is None:
        use, reason = Use.NOT_AT_ALL, f"{agr.sentence}: nothing shows that its scores track yours"
    elif agr.low >= PER_ITEM_AGREEMENT:
        use, reason = Use.PER_ITEM, f"{agr.sentence}, the whole CI at or above {PER_ITEM_AGREEMENT:g}"
    elif agr.low > 0:
        use, reason = Use.MEAN_ONLY, (f"{agr.sentence}: it tracks your labels, but too loosely to trust a single "
                                      f"score (per item needs the CI at or above {PER_ITEM_AGREEMENT:g})")
    else:
        use, reason = Use.NOT_AT_ALL, (f"{agr.sentence}: the CI reaches {agr.low:.2f}, so its scores may not track "
                                       "yours at all; read your labels' mean instead")
    return Verdict(tag, judge, metric, use, reason)


@dataclass
class JudgeCheck:
    """What the labels say about the judge (``judge``: its model) on ``metric``."""

    judge: str
    metric: str
    agreement: dict[str, Agreement] = field(default_factory=dict)
    means: dict[str, CalibratedMean] = field(default_factory=dict)
    difference: tuple[str, str, CalibratedMean] | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    labels_used: dict[str, LabelUse] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """What backs the verdicts, a sentence each: the labels used, the agreement, the calibrated means."""
        out = [f"{tag}: {use.sentence}" for tag, use in self.labels_used.items()]
        out += [f"judge {self.judge} on {self.metric} vs your labels of {tag}: {agr.sentence}"
                for tag, agr in self.agreement.items()]
        out += [f"{tag}: {self.metric} calibrated to your labels {ppi.sentence}" for tag, ppi in self.means.items()]
        if self.difference is not None:
            a, b, d = self.difference
            out.append(f"{a} \u2212 {b}: {self.metric} difference calibrated to your labels {d.sentence}")
        return out

    @property
    def sentences(self) -> list[str]:
        return [v.sentence for v in self.verdicts.values()] + self.notes


def uncalibrated(judges: list[dict[str, Any]]) -> list[str]:
    """One line per score judge of a result that no labels checked."""
    return [f"judge {j.get('judge')} on {j.get('metric')} is uncalibrated: nothing compares it with your own "
            "labels (--calibrate LABELS, or qfnb.evaluation.calibrated_mean)" for j in judges if "metric" in j]


def check_judge(result: Any, labels: Mapping[str, Mapping[int, float]], *, metric: str, baseline: str | None = None,
                alpha: float = 0.05) -> JudgeCheck:
    """``labels``: ``{model tag: {item index: your score}}`` on a few items of ``result``, on the
    judge's scale; ``metric``: the judge's score column. With ``baseline`` labelled on the same items
    as another model, the paired difference is calibrated too."""
    judge = next((str(j.get("judge")) for j in result.judges if j.get("metric") == metric), None)
    if judge is None:
        raise invalid("metric", f"{metric!r} is not a judge's score in this result (judges: {result.judges})")
    check = JudgeCheck(judge, metric)
    scores: dict[str, dict[int, float]] = {}
    for tag, given in labels.items():
        if tag not in result.llm_tags:
            raise invalid("labels", f"{tag!r} is not a model of this result (models: {result.llm_tags})")
        if len(given) < MIN_LABELS:
            raise invalid("labels", f"{tag}: {len(given)} labelled item(s); at least {MIN_LABELS} are needed")
        per_item = {i: float(np.mean(v)) for i, v in item_scores(result.samples, tag, metric).items()}
        scores[tag] = per_item
        use = _label_use(result.samples, tag, given, per_item)
        check.labels_used[tag] = use
        if len(use.used) < MIN_LABELS:  # the labels were given, the judge's calls failed: a verdict, not an error
            check.verdicts[tag] = verdict(tag, None, use, judge=judge, metric=metric)
            continue
        judged, mine = [per_item[i] for i in use.used], [float(given[i]) for i in use.used]
        check.agreement[tag] = agreement(judged, mine, alpha=alpha)
        check.verdicts[tag] = verdict(tag, check.agreement[tag], use, judge=judge, metric=metric)
        if len(per_item) >= 2:
            check.means[tag] = calibrated_mean(list(per_item.values()), judged, mine, alpha=alpha)
    if baseline is not None and baseline in check.agreement:
        check.difference = _difference(check, scores, labels, baseline, alpha)
    return check


def _difference(check: JudgeCheck, scores: Mapping[str, Mapping[int, float]],
                labels: Mapping[str, Mapping[int, float]], baseline: str,
                alpha: float) -> tuple[str, str, CalibratedMean] | None:
    """The first labelled model's paired difference with ``baseline``, calibrated (None: too few shared labels)."""
    for tag in labels:
        if tag == baseline or tag not in check.agreement:
            continue
        both = [i for i in scores[tag] if i in scores[baseline]]
        lab = [i for i in both if i in labels[tag] and i in labels[baseline]]
        if len(lab) >= MIN_LABELS:
            diff = calibrated_difference(
                [scores[tag][i] for i in both], [scores[baseline][i] for i in both],
                [scores[tag][i] for i in lab], [scores[baseline][i] for i in lab],
                [labels[tag][i] for i in lab], [labels[baseline][i] for i in lab], alpha=alpha)
            return tag, baseline, diff
    return None


def _label_use(samples: Any, tag: str, given: Mapping[int, float], judged: Mapping[int, float]) -> LabelUse:
    """Which labels of ``tag`` have a judge score; the others, by reason."""
    rows = samples[samples["llm"] == tag]
    items = {int(i) for i in rows["index"]}
    errors = rows["error"] if "error" in rows.columns else pd.Series([None] * len(rows), index=rows.index)
    unanswered = {int(i) for i, e in zip(rows["index"], errors, strict=True) if isinstance(e, str) and e}
    used = sorted(i for i in given if i in judged)
    missing = [i for i in given if i not in judged]
    by_reason = (("the model's answer failed", sorted(i for i in missing if i in unanswered)),
                 ("the judge's call failed or gave no score",
                  sorted(i for i in missing if i in items and i not in unanswered)),
                 ("they are not items of this result", sorted(i for i in missing if i not in items)))
    dropped = {reason: found for reason, found in by_reason if found}
    return LabelUse(len(given), used, dropped)

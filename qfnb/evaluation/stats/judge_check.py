"""A score judge checked against the user's labels on a few items of a result: agreement with a CI,
then each model's mean (and the difference with a baseline) with a prediction-powered CI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import invalid
from ..data import item_scores
from .calibrate import Agreement, CalibratedMean, agreement, calibrated_difference, calibrated_mean

#: fewer labels than this give no agreement figure
MIN_LABELS = 4


@dataclass
class JudgeCheck:
    """What the labels say about the judge (``judge``: its model) on ``metric``."""

    judge: str
    metric: str
    agreement: dict[str, Agreement] = field(default_factory=dict)
    means: dict[str, CalibratedMean] = field(default_factory=dict)
    difference: tuple[str, str, CalibratedMean] | None = None

    @property
    def sentences(self) -> list[str]:
        out = [f"judge {self.judge} on {self.metric} vs your labels of {tag}: {agr.sentence}"
               for tag, agr in self.agreement.items()]
        out += [f"{tag}: {self.metric} calibrated to your labels {ppi.sentence}" for tag, ppi in self.means.items()]
        if self.difference is not None:
            a, b, d = self.difference
            out.append(f"{a} \u2212 {b}: {self.metric} difference calibrated to your labels {d.sentence}")
        return out


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
        per_item = {i: float(np.mean(v)) for i, v in item_scores(result.samples, tag, metric).items()}
        scores[tag] = per_item
        keys = [i for i in given if i in per_item]
        if len(keys) < MIN_LABELS:
            raise invalid("labels", f"{tag}: {len(keys)} labelled item(s) with a judge score; at least "
                                    f"{MIN_LABELS} are needed")
        judged, mine = [per_item[i] for i in keys], [float(given[i]) for i in keys]
        check.agreement[tag] = agreement(judged, mine, alpha=alpha)
        check.means[tag] = calibrated_mean(list(per_item.values()), judged, mine, alpha=alpha)
    if baseline is not None and baseline in labels:
        for tag in labels:
            if tag == baseline:
                continue
            both = [i for i in scores[tag] if i in scores[baseline]]
            lab = [i for i in both if i in labels[tag] and i in labels[baseline]]
            if len(lab) >= MIN_LABELS:
                diff = calibrated_difference(
                    [scores[tag][i] for i in both], [scores[baseline][i] for i in both],
                    [scores[tag][i] for i in lab], [scores[baseline][i] for i in lab],
                    [labels[tag][i] for i in lab], [labels[baseline][i] for i in lab], alpha=alpha)
                check.difference = (tag, baseline, diff)
                break
    return check

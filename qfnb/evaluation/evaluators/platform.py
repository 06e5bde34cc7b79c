"""Platform (Qianfan) evaluators: the config of a ``modelrepo/eval`` task.

``build_eval_standard_conf`` turns the evaluators into ``evalStandardConf`` (pure, no I/O); running
the task is :mod:`qfnb.evaluation.runs.platform`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .._errors import invalid
from ..base import Evaluator

log = logging.getLogger("qfnb.evaluation")

REFEREE_DEFAULT_METRIC = "综合得分"
REFEREE_DEFAULT_STEPS = (
    "1.仔细阅读问题，理解问题的要求和背景；\n"
    "2.仔细阅读标准答案；\n"
    "3.阅读助手的回答，检查是否有事实错误或用词不当；\n"
    "4.检查回答是否遵照题目的要求（答题方式、长度、格式）。"
)
REFEREE_TEMPLATE_NAME = "裁判员模型打分模板 (含参考答案)"
#: The judge template sent as ``prompt.templateContent``. The platform fills ``{{src}}`` (the
#: question), ``{{tgt}}`` (the reference), ``{{prediction}}`` (the model output) and the score range.
REFEREE_TEMPLATE = """【系统】
请作为一个公正的裁判，评估AI助手对下面用户问题的回答质量。请综合考虑理解（是否抓住问题的核心需求）、
生成（回答与问题的相关性和文本质量）、逻辑（推理与论证是否正确一致）、事实（信息是否准确可靠）
和指令遵循（是否严格按照问题要求的方式、长度与格式作答）五个方面。
请给出{{min_score}}到{{max_score}}之间的一个综合得分。
【用户的问题】
{{src}}
【参考的回答】
{{tgt}}
【助手的回答】
{{prediction}}
【输出格式】
{"reason": "<评分理由>", "score": "<得分>"}
请只完成评估打分任务，不要回答用户的问题，也不要输出上述JSON以外的内容。
【评估结果】"""
MANUAL_SATISFACTION = "满意度"
MAX_MANUAL_DIMENSIONS = 4


class QianfanEvaluator(Evaluator):
    """Base of the evaluators run by the platform; each contributes to ``evalStandardConf``."""

    mode: str = ""

    def conf(self) -> dict[str, Any]:
        raise NotImplementedError


class QianfanRuleEvaluator(QianfanEvaluator):
    """Rule metrics computed by the platform: ``similarity`` and/or ``accuracy``."""

    mode = "rule"

    def __init__(self, using_similarity: bool = False, using_accuracy: bool = False,
                 stop_words: str | None = None) -> None:
        if not (using_similarity or using_accuracy):
            raise invalid("using_similarity", "QianfanRuleEvaluator needs using_similarity and/or using_accuracy")
        if stop_words is not None and (not isinstance(stop_words, str) or not stop_words.strip()):
            raise invalid("stop_words", "must be a non-empty path (e.g. a BOS path) or None")
        self.using_similarity = bool(using_similarity)
        self.using_accuracy = bool(using_accuracy)
        self.stop_words = stop_words

    def conf(self) -> dict[str, Any]:
        modes = [m for m, on in (("similarity", self.using_similarity), ("accuracy", self.using_accuracy)) if on]
        out: dict[str, Any] = {"scoreModes": modes}
        if self.stop_words:
            out["stopWordsPath"] = self.stop_words
        return out

    def __repr__(self) -> str:
        return (f"QianfanRuleEvaluator(using_similarity={self.using_similarity}, "
                f"using_accuracy={self.using_accuracy}, stop_words={self.stop_words!r})")


class QianfanRefereeEvaluator(QianfanEvaluator):
    """A referee model (the app ``app_id`` calls it) scores each output on the platform."""

    mode = "model"

    def __init__(self, app_id: int, prompt_metrics: str = REFEREE_DEFAULT_METRIC,
                 prompt_steps: str = REFEREE_DEFAULT_STEPS, prompt_max_score: int = 5) -> None:
        if isinstance(app_id, bool) or not isinstance(app_id, int) or app_id <= 0:
            raise invalid("app_id", "must be a positive integer (the Qianfan app id)")
        for name, text in (("prompt_metrics", prompt_metrics), ("prompt_steps", prompt_steps)):
            if not isinstance(text, str) or not text.strip():
                raise invalid(name, "must be a non-empty string")
        if isinstance(prompt_max_score, bool) or not isinstance(prompt_max_score, int) or prompt_max_score < 1:
            raise invalid("prompt_max_score", "must be an integer >= 1")
        self.app_id = app_id
        self.prompt_metrics = prompt_metrics
        self.prompt_steps = prompt_steps
        self.prompt_max_score = prompt_max_score

    def conf(self) -> dict[str, Any]:
        return {
            "appId": self.app_id,
            "prompt": {
                "templateName": REFEREE_TEMPLATE_NAME,
                "templateContent": REFEREE_TEMPLATE,
                "metric": self.prompt_metrics,
                "steps": self.prompt_steps,
                "maxScore": self.prompt_max_score,
            },
        }

    def __repr__(self) -> str:
        return f"QianfanRefereeEvaluator(app_id={self.app_id}, prompt_metrics={self.prompt_metrics!r})"


@dataclass(frozen=True)
class ManualEvaluatorDimension:
    """One manual-scoring dimension shown to human raters on the platform."""

    dimension: str
    description: str | None = None


def _dimension(value: Any) -> ManualEvaluatorDimension:
    if isinstance(value, ManualEvaluatorDimension):
        dim = value
    elif isinstance(value, str):
        dim = ManualEvaluatorDimension(value)
    elif isinstance(value, Mapping) and "dimension" in value:
        dim = ManualEvaluatorDimension(str(value["dimension"]), value.get("description"))
    else:
        raise invalid("evaluation_dimensions", f"entries are names or {{'dimension', 'description'}}, got {value!r}")
    if not dim.dimension.strip():
        raise invalid("evaluation_dimensions", "dimension names must not be empty")
    return dim


class QianfanManualEvaluator(QianfanEvaluator):
    """Human scoring on the platform; ``满意度`` (satisfaction) is always the first dimension."""

    mode = "manual"

    def __init__(self, evaluation_dimensions: Sequence[Any] = (MANUAL_SATISFACTION,)) -> None:
        dims = [_dimension(d) for d in evaluation_dimensions]
        names = [d.dimension for d in dims]
        if len(set(names)) != len(names):
            raise invalid("evaluation_dimensions", f"duplicate dimensions in {names}")
        first = [d for d in dims if d.dimension == MANUAL_SATISFACTION]
        first = first or [ManualEvaluatorDimension(MANUAL_SATISFACTION)]
        dims = first + [d for d in dims if d.dimension != MANUAL_SATISFACTION]
        if len(dims) > MAX_MANUAL_DIMENSIONS:
            raise invalid("evaluation_dimensions",
                          f"at most {MAX_MANUAL_DIMENSIONS} dimensions including {MANUAL_SATISFACTION}, "
                          f"got {len(dims)}")
        self.evaluation_dimensions = dims

    def conf(self) -> dict[str, Any]:
        # a dimension always has its (non-empty) name; its description only when one is given
        return {"evaluationDimension": [{k: v for k, v in asdict(d).items() if v} for d in self.evaluation_dimensions]}

    def __repr__(self) -> str:
        return f"QianfanManualEvaluator(evaluation_dimensions={[d.dimension for d in self.evaluation_dimensions]})"


def check_qianfan_evaluators(evaluators: Sequence[Any]) -> list[QianfanEvaluator]:
    """At least one evaluator, all platform ones, at most one of each type."""
    if not evaluators:
        raise invalid("qianfan_evaluators", "at least one evaluator is required")
    seen: set[type] = set()
    for ev in evaluators:
        if not isinstance(ev, QianfanEvaluator):
            raise invalid("qianfan_evaluators", f"{type(ev).__name__} is not a Qianfan (platform) evaluator")
        if type(ev) in seen:
            raise invalid("qianfan_evaluators", f"at most one {type(ev).__name__} is allowed")
        seen.add(type(ev))
    return list(evaluators)


def build_eval_standard_conf(evaluators: Sequence[QianfanEvaluator]) -> dict[str, Any]:
    """``evalStandardConf`` for ``eval/create``: ``evalMode`` joins the modes in evaluator order."""
    checked = check_qianfan_evaluators(evaluators)
    return {"evalMode": ",".join(ev.mode for ev in checked), **{k: v for ev in checked for k, v in ev.conf().items()}}

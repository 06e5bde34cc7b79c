"""The official SDK's module path for the evaluators (``qianfan.evaluation.evaluator``)."""

from .base import Evaluator, LocalEvaluator
from .evaluators.platform import (
    ManualEvaluatorDimension,
    QianfanEvaluator,
    QianfanManualEvaluator,
    QianfanRefereeEvaluator,
    QianfanRuleEvaluator,
)

__all__ = ["Evaluator", "LocalEvaluator", "ManualEvaluatorDimension", "QianfanEvaluator",
           "QianfanManualEvaluator", "QianfanRefereeEvaluator", "QianfanRuleEvaluator"]

"""Evaluation: ``EvaluationManager`` with local and platform evaluators, ``EvaluationResult``."""

from ._errors import EvaluationError
from .answers import AnswerStore
from .base import EvalInput, Evaluator, LocalEvaluator, Sample
from .compare import Comparison, PairedMetric
from .judge import LocalJudgeEvaluator, parse_judge_score
from .manager import EvaluationManager
from .manual import ManualEvaluator, ManualItem
from .metrics import BleuEvaluator, ExactMatchEvaluator, RougeEvaluator
from .pairwise import PairwiseJudge
from .platform import (
    ManualEvaluatorDimension,
    QianfanEvaluator,
    QianfanManualEvaluator,
    QianfanRefereeEvaluator,
    QianfanRuleEvaluator,
    build_eval_standard_conf,
)
from .result import EvaluationResult
from .rubric import Rubric
from .similarity import EmbeddingSimilarityEvaluator
from .stability import Stability

__all__ = [
    "AnswerStore",
    "BleuEvaluator",
    "Comparison",
    "EmbeddingSimilarityEvaluator",
    "EvalInput",
    "EvaluationError",
    "EvaluationManager",
    "EvaluationResult",
    "Evaluator",
    "ExactMatchEvaluator",
    "LocalEvaluator",
    "LocalJudgeEvaluator",
    "ManualEvaluator",
    "ManualEvaluatorDimension",
    "ManualItem",
    "PairedMetric",
    "PairwiseJudge",
    "QianfanEvaluator",
    "QianfanManualEvaluator",
    "QianfanRefereeEvaluator",
    "QianfanRuleEvaluator",
    "RougeEvaluator",
    "Rubric",
    "Sample",
    "Stability",
    "build_eval_standard_conf",
    "parse_judge_score",
]

"""Evaluation: ``EvaluationManager`` with local and platform evaluators, ``EvaluationResult``, the
paired comparison. May import ``qfnb.model``, ``qfnb.dataset``, ``qfnb.resources``, ``qfnb._core``
and ``qfnb.protocol``; never ``trainer``, ``agents``, ``notebook`` or ``qfnb.local``."""

from ._errors import EvaluationError
from .answers import AnswerStore
from .base import EvalInput, Evaluator, LocalEvaluator, Sample
from .calibrate import Agreement, CalibratedMean, agreement, calibrated_difference, calibrated_mean
from .compare import Comparison, PairedMetric
from .judge import LocalJudgeEvaluator, parse_judge_score
from .llm import PromptVariant
from .manager import EvaluationManager
from .manual import ManualEvaluator, ManualItem
from .metrics import BleuEvaluator, ExactMatchEvaluator, FunctionEvaluator, RougeEvaluator
from .pairwise import PairwiseJudge
from .plan import Plan, plan_comparison
from .platform import (
    ManualEvaluatorDimension,
    QianfanEvaluator,
    QianfanManualEvaluator,
    QianfanRefereeEvaluator,
    QianfanRuleEvaluator,
    build_eval_standard_conf,
)
from .result import EvaluationResult
from .retrieval import RetrievalEvaluator
from .rubric import Rubric
from .sequential import ConfidenceSequence, SequentialComparison
from .similarity import EmbeddingSimilarityEvaluator
from .stability import Stability

__all__ = [
    "Agreement",
    "AnswerStore",
    "BleuEvaluator",
    "CalibratedMean",
    "Comparison",
    "ConfidenceSequence",
    "EmbeddingSimilarityEvaluator",
    "EvalInput",
    "EvaluationError",
    "EvaluationManager",
    "EvaluationResult",
    "Evaluator",
    "ExactMatchEvaluator",
    "FunctionEvaluator",
    "LocalEvaluator",
    "LocalJudgeEvaluator",
    "ManualEvaluator",
    "ManualEvaluatorDimension",
    "ManualItem",
    "PairedMetric",
    "PairwiseJudge",
    "Plan",
    "PromptVariant",
    "QianfanEvaluator",
    "QianfanManualEvaluator",
    "QianfanRefereeEvaluator",
    "QianfanRuleEvaluator",
    "RetrievalEvaluator",
    "RougeEvaluator",
    "Rubric",
    "Sample",
    "SequentialComparison",
    "Stability",
    "agreement",
    "build_eval_standard_conf",
    "calibrated_difference",
    "calibrated_mean",
    "parse_judge_score",
    "plan_comparison",
]

"""Evaluation: ``EvaluationManager`` with local and platform evaluators, ``EvaluationResult``, the
paired comparison. May import ``qfnb.model``, ``qfnb.dataset``, ``qfnb.resources``, ``qfnb._core``
and ``qfnb.protocol``; never ``trainer``, ``agents``, ``notebook`` or ``qfnb.local``.

Four rooms, each importing only those below it (pyproject.toml's import contract): ``runs`` (the
manager, the answers and their store, a platform task) -> ``results`` (``EvaluationResult``,
``Comparison``, ``Stability`` and their views) -> ``evaluators`` (what scores an answer) and ``stats``
(the numbers), which import none of each other. All stand on the shared modules here: ``llm`` (what
answers: targets and their identity), ``fingerprint``, ``base`` (the evaluator's input and base
classes), ``data`` (frames) and ``_errors``. ``evaluator`` is the official SDK's module path."""

from ._errors import EvaluationError
from .base import EvalInput, Evaluator, LocalEvaluator, Sample
from .evaluators.judge import LocalJudgeEvaluator, parse_judge_score
from .evaluators.manual import ManualEvaluator, ManualItem
from .evaluators.metrics import BleuEvaluator, ExactMatchEvaluator, FunctionEvaluator, RougeEvaluator
from .evaluators.pairwise import PairwiseJudge
from .evaluators.platform import (
    ManualEvaluatorDimension,
    QianfanEvaluator,
    QianfanManualEvaluator,
    QianfanRefereeEvaluator,
    QianfanRuleEvaluator,
    build_eval_standard_conf,
)
from .evaluators.retrieval import RetrievalEvaluator
from .evaluators.rubric import Rubric
from .evaluators.similarity import EmbeddingSimilarityEvaluator
from .llm import PromptVariant
from .results.compare import Comparison, PairedMetric
from .results.result import EvaluationResult
from .results.stability import Stability
from .runs.answers import AnswerStore
from .runs.manager import EvaluationManager
from .stats.active import LabelQueue
from .stats.calibrate import Agreement, CalibratedMean, agreement, calibrated_difference, calibrated_mean
from .stats.plan import Plan, plan_comparison
from .stats.sequential import ConfidenceSequence, SequentialComparison

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
    "LabelQueue",
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

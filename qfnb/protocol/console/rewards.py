"""Reinforcement fine-tuning's rewards, pure and written once for the training worker, the platform's
routes and the client.

A RFT run's ``reward`` (in ``spec.json`` and the v2 ``CreateFineTuningTask`` body) is either
``{"source": "client"}`` -- the user's Python function scores the samples in the user's own process,
which fetches them from the platform and posts the floats back (:data:`FETCH_ACTION`,
:data:`SUBMIT_ACTION`) -- or a declarative grader, OpenAI's ``string_check`` / ``text_similarity`` /
``multi`` shape, that the worker scores itself (:func:`grade`): data, never code, so nothing a user
wrote runs inside the shared daemon. A ``multi`` grader's ``calculate_output`` is arithmetic over its
graders' scores (``0.5 * ticket + 0.5 * content``), read by :func:`formula_value`, never ``eval``-ed.

Each reward must be a finite real number (:func:`reward_problem`); anything else stops the run with
the reason. The run's reward curve is the per-step mean and its moving mean (:func:`moving_mean`).
"""

from __future__ import annotations

import ast
import difflib
import json
import keyword
import math
import numbers
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.protocol.console import textmetrics

__all__ = ["CLIENT", "DEFAULT_CLIENT_WAIT", "DEFAULT_REWARD_WAIT", "FETCH_ACTION", "FORMULA_FUNCTIONS", "GRADERS",
           "MAX_FORMULA_CHARS", "MAX_GRADER_BYTES", "MAX_MULTI_GRADERS", "MAX_SCORED_CHARS", "MAX_TEMPLATE_FIELDS",
           "MOVING_WINDOW", "SIMILARITY_METRICS", "STRING_OPERATIONS", "SUBMIT_ACTION", "TEXT_GRADERS",
           "RewardSpec", "RewardSpecError", "formula_value", "grade", "grader_error", "moving_mean",
           "parse_reward", "reward_problem"]

#: the reward source where the user's function scores the samples (in the user's process)
CLIENT = "client"
#: declarative graders the worker scores itself (OpenAI's grader types); a ``multi`` grader combines the others
TEXT_GRADERS = ("string_check", "text_similarity")
GRADERS = (*TEXT_GRADERS, "multi")
#: ``string_check`` operations: equal, not equal, contains, contains ignoring case
STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
#: ``text_similarity`` metrics the platform computes
SIMILARITY_METRICS = ("fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_l")
#: qfnb's v2 console actions of the exchange (``POST /v2/finetuning?Action=...``, IAM-signed)
FETCH_ACTION = "DescribeFineTuningRewardRequests"
SUBMIT_ACTION = "SubmitFineTuningRewards"
#: seconds a sample request waits for a reward client to fetch it before the run stops (the
#: client long-polls every few seconds while it lives: this is how long a kernel restart may take)
DEFAULT_CLIENT_WAIT = 180.0
#: seconds a fetched request waits for its rewards (the user's function on all its samples)
DEFAULT_REWARD_WAIT = 600.0
#: steps in the reward's moving mean
MOVING_WINDOW = 8

#: bytes of a grader (compact JSON): it is stored with the job and every job listing returns it whole
MAX_GRADER_BYTES = 4096
#: ``{{...}}`` fields one template names: each is filled with a row's value, up to a line long
MAX_TEMPLATE_FIELDS = 8
#: characters of each text a ``text_similarity`` metric compares: rouge_l's and fuzzy_match's time grows with
#: the product of the two lengths (an answer is at most ``maxNewTokens``; a longer reference is cut)
MAX_SCORED_CHARS = 2000

#: graders one ``multi`` grader combines
MAX_MULTI_GRADERS = 8
#: characters of a ``multi`` grader's ``calculate_output``
MAX_FORMULA_CHARS = 300
#: what ``calculate_output`` may call (OpenAI's list); ``^`` is a power, as ``**``
FORMULA_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp,
    "sqrt": math.sqrt, "log": math.log}
_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow, ast.BitXor: operator.pow}
#: the other nodes a formula may hold (calls, names and constants are checked on their own)
_FORMULA_NODES = (ast.BinOp, ast.UnaryOp, ast.Load, ast.UAdd, ast.USub, *_OPERATORS)

_TEMPLATE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def grader_error(raw: Any, inner: bool = False) -> tuple[str, str] | None:
    """``(key, why)`` for a grader the local platform cannot run, ``key`` the field inside it ('' for the whole
    grader); None: it runs. ``inner``: one of a ``multi`` grader's graders (not a ``multi`` itself)."""
    if not isinstance(raw, Mapping):
        return "", "must be an object with a 'type'"
    kinds = TEXT_GRADERS if inner else GRADERS
    kind = raw.get("type")
    if kind not in kinds:
        return "type", (f"must be one of {', '.join(kinds)} on the local platform (model graders are not run "
                        f"here{'' if inner else '; or give source: client'}), got {kind!r:.40}")
    size = len(json.dumps(raw, separators=(",", ":"), default=str).encode("utf-8"))
    if not inner and size > MAX_GRADER_BYTES:
        return "", f"is {size} bytes as JSON; a grader is at most {MAX_GRADER_BYTES}"
    if kind == "multi":
        return _multi_error(raw)
    for key in ("input", "reference"):
        value = raw.get(key)
        if not isinstance(value, str):
            return key, "is required: a template string such as '{{sample.output_text}}'"
        if len(_TEMPLATE.findall(value)) > MAX_TEMPLATE_FIELDS:
            return key, f"names more than {MAX_TEMPLATE_FIELDS} {{{{...}}}} fields"
    if kind == "string_check" and raw.get("operation") not in STRING_OPERATIONS:
        return "operation", f"must be one of {', '.join(STRING_OPERATIONS)}, got {raw.get('operation')!r:.40}"
    if kind == "text_similarity" and raw.get("evaluation_metric") not in SIMILARITY_METRICS:
        return "evaluation_metric", (f"must be one of {', '.join(SIMILARITY_METRICS)} on the local platform, got "
                                     f"{raw.get('evaluation_metric')!r:.40}")
    return None


def _multi_error(raw: Mapping[str, Any]) -> tuple[str, str] | None:
    graders = raw.get("graders")
    if not isinstance(graders, Mapping) or not 1 <= len(graders) <= MAX_MULTI_GRADERS:
        return "graders", (f"must be an object of 1 to {MAX_MULTI_GRADERS} named graders, e.g. "
                           "{\"ticket\": {\"type\": \"string_check\", ...}}")
    for name, grader in graders.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name in FORMULA_FUNCTIONS:
            return f"graders.{name}", ("a grader's name is what calculate_output calls it: letters, digits and _, "
                                       f"not a function's ({', '.join(FORMULA_FUNCTIONS)})")
        problem = grader_error(grader, inner=True)
        if problem is not None:
            return f"graders.{name}{'.' if problem[0] else ''}{problem[0]}", problem[1]
    try:
        _formula(raw.get("calculate_output"), set(graders))
    except ValueError as exc:
        return "calculate_output", str(exc)
    return None


def _formula(text: Any, names: set[str]) -> ast.expr:
    """``calculate_output`` parsed and checked: numbers, the graders' ``names``, ``+ - * / ^ **``, parentheses
    and :data:`FORMULA_FUNCTIONS`; ValueError says what else it holds."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("is required: a formula over the graders' names, e.g. '0.5 * ticket + 0.5 * content'")
    if len(text) > MAX_FORMULA_CHARS:
        raise ValueError(f"is {len(text)} characters; a formula is at most {MAX_FORMULA_CHARS}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"is not a formula ({exc.msg}): {text!r:.80}") from None
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        problem = _node_problem(node, names, called)
        if problem is not None:
            raise ValueError(problem)
    return tree


def _node_problem(node: ast.AST, names: set[str], called: set[int]) -> str | None:
    """What a formula's ``node`` may not be (None: it may); ``called``: the ids of the names a call calls."""
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in FORMULA_FUNCTIONS) or node.keywords:
            return f"may call only {', '.join(FORMULA_FUNCTIONS)}, with plain arguments"
        return None if node.args else f"{node.func.id}() needs an argument"
    if isinstance(node, ast.Name):
        if node.id in names or id(node) in called:
            return None
        return f"names {node.id!r}, which is not one of the graders ({', '.join(sorted(names))})"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            return f"holds {node.value!r:.40}; a formula's constants are numbers"
        return None
    if isinstance(node, _FORMULA_NODES):
        return None
    return (f"holds {type(node).__name__}; a formula is numbers, the graders' names, + - * / ^, parentheses and "
            + ", ".join(FORMULA_FUNCTIONS))


def formula_value(text: str, scores: Mapping[str, float]) -> float:
    """``calculate_output`` worked out on the graders' ``scores`` (every number a float, so ``^`` cannot build a
    huge integer); ValueError for what has no value (a division by zero, a log of 0, an overflow)."""

    def value(node: ast.expr) -> float:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)  # _formula let numbers only through
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(scores[node.id])
        if isinstance(node, ast.UnaryOp):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp):
            return float(_OPERATORS[type(node.op)](value(node.left), value(node.right)))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return float(FORMULA_FUNCTIONS[node.func.id](*(value(a) for a in node.args)))

    try:
        result = value(_formula(text, set(scores)))
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ValueError(f"calculate_output {text!r:.80} has no value for scores {dict(scores)}: {exc}") from None
    if not math.isfinite(result):
        raise ValueError(f"calculate_output {text!r:.80} is {result} for scores {dict(scores)}")
    return result


class RewardSpecError(ValueError):
    """A reward source is malformed; the message names the field."""


@dataclass(frozen=True)
class RewardSpec:
    """Where a RFT run's rewards come from: the client (``grader`` None) or a declarative grader."""

    grader: Mapping[str, Any] | None = None
    client_wait: float = DEFAULT_CLIENT_WAIT
    reward_wait: float = DEFAULT_REWARD_WAIT

    @property
    def from_client(self) -> bool:
        return self.grader is None

    def to_wire(self) -> dict[str, Any]:
        if self.grader is not None:
            return dict(self.grader)
        return {"source": CLIENT, "clientWaitSeconds": self.client_wait, "rewardWaitSeconds": self.reward_wait}

    def describe(self) -> str:
        if self.grader is None:
            return "the client's reward function"
        return f"the {self.grader['type']} grader" + (f" {self.grader['name']!r}" if self.grader.get("name") else "")


def _wait(raw: Mapping[str, Any], key: str, default: float, field: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 86_400:
        raise RewardSpecError(f"{field}.{key}: must be a number of seconds in [1, 86400], got {value!r}")
    return float(value)


def parse_reward(raw: Any, field: str = "reward") -> RewardSpec:
    """The reward source ``raw`` names, checked: ``{"source": "client", ...}`` (or the word
    ``"client"``) or a grader ``{"type": "string_check" | "text_similarity", ...}``."""
    if raw == CLIENT or raw is None:
        return RewardSpec()
    if not isinstance(raw, Mapping):
        raise RewardSpecError(f"{field}: must be {{\"source\": \"client\"}} or a grader object, got {raw!r:.60}")
    if raw.get("source") == CLIENT:
        return RewardSpec(client_wait=_wait(raw, "clientWaitSeconds", DEFAULT_CLIENT_WAIT, field),
                          reward_wait=_wait(raw, "rewardWaitSeconds", DEFAULT_REWARD_WAIT, field))
    problem = grader_error(raw)
    if problem is not None:
        raise RewardSpecError(f"{field}{'.' if problem[0] else ''}{problem[0]}: {problem[1]}")
    return RewardSpec(grader=dict(raw))


def _render(template: str, completion: str, item: Mapping[str, Any]) -> str:
    """A grader template with ``{{sample.output_text}}`` and ``{{item.FIELD}}`` filled in."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "sample.output_text":
            return completion
        if name.startswith("item.") and name[5:] in item:
            return textmetrics.as_text(item[name[5:]])
        raise RewardSpecError(f"reward: the template names {{{{{name}}}}}; it may name sample.output_text or "
                              f"item.FIELD of the row ({', '.join(sorted(item)) or 'no fields'})")

    return _TEMPLATE.sub(value, template)


def grade(grader: Mapping[str, Any], completion: str, item: Mapping[str, Any]) -> float:
    """A declarative grader's score of ``completion`` for the dataset row ``item`` (in [0, 1]; a ``multi``
    grader's is its ``calculate_output``, where ValueError says why it has none)."""
    if grader["type"] == "multi":
        scores = {name: grade(g, completion, item) for name, g in grader["graders"].items()}
        return formula_value(grader["calculate_output"], scores)
    given, reference = _render(grader["input"], completion, item), _render(grader["reference"], completion, item)
    if grader["type"] == "string_check":
        op = grader["operation"]
        hit = (given == reference if op == "eq" else given != reference if op == "ne"
               else reference in given if op == "like" else reference.lower() in given.lower())
        return 1.0 if hit else 0.0
    metric = grader["evaluation_metric"]
    given, reference = given[:MAX_SCORED_CHARS], reference[:MAX_SCORED_CHARS]
    if metric == "fuzzy_match":
        return difflib.SequenceMatcher(None, given, reference).ratio()
    if metric == "bleu":
        return textmetrics.sentence_bleu4(reference, given)
    return textmetrics.rouge(reference, given)[metric]


def reward_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a reward (None: a finite real number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"must be a number (int or float), got {type(value).__name__} {value!r:.60}"
    if not math.isfinite(float(value)):
        return f"must be a finite number, got {value!r}"
    return None


def moving_mean(values: Sequence[float], window: int = MOVING_WINDOW) -> float:
    """The mean of the last ``window`` values (of all, while fewer)."""
    tail = list(values)[-window:]
    return sum(tail) / len(tail) if tail else float("nan")

"""Reinforcement fine-tuning's rewards, pure and written once for the training worker, the platform's
routes and the client.

A RFT run's ``reward`` (in ``spec.json`` and the v2 ``CreateFineTuningTask`` body) is either
``{"source": "client"}`` -- the user's Python function scores the samples in the user's own process,
which fetches them from the platform and posts the floats back (:data:`FETCH_ACTION`,
:data:`SUBMIT_ACTION`) -- or a declarative grader, OpenAI's ``string_check`` / ``text_similarity``
shape, that the worker scores itself (:func:`grade`): data, never code, so nothing a user wrote runs
inside the shared daemon.

Each reward must be a finite real number (:func:`reward_problem`); anything else stops the run with
the reason. The run's reward curve is the per-step mean and its moving mean (:func:`moving_mean`).
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.protocol.console import textmetrics

__all__ = ["CLIENT", "DEFAULT_CLIENT_WAIT", "DEFAULT_REWARD_WAIT", "FETCH_ACTION", "GRADERS", "MAX_GRADER_BYTES",
           "MAX_SCORED_CHARS", "MAX_TEMPLATE_FIELDS", "MOVING_WINDOW", "SIMILARITY_METRICS", "SUBMIT_ACTION",
           "RewardSpec", "RewardSpecError", "grade", "grader_problem", "moving_mean", "parse_reward", "reward_problem"]

#: the reward source where the user's function scores the samples (in the user's process)
CLIENT = "client"
#: declarative graders the worker scores itself (OpenAI's grader types)
GRADERS = ("string_check", "text_similarity")
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

_TEMPLATE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def grader_problem(raw: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(key, why)`` when the grader ``raw`` passes a cap (its size, a template's fields); None: it fits."""
    size = len(json.dumps(raw, separators=(",", ":"), default=str).encode("utf-8"))
    if size > MAX_GRADER_BYTES:
        return "", f"is {size} bytes as JSON; a grader is at most {MAX_GRADER_BYTES}"
    for key in ("input", "reference"):
        value = raw.get(key)
        if isinstance(value, str) and len(_TEMPLATE.findall(value)) > MAX_TEMPLATE_FIELDS:
            return key, f"names more than {MAX_TEMPLATE_FIELDS} {{{{...}}}} fields"
    return None


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
    kind = raw.get("type")
    if kind not in GRADERS:
        raise RewardSpecError(f"{field}.type: must be one of {', '.join(GRADERS)} (or give source: client), "
                              f"got {kind!r:.40}")
    for key in ("input", "reference"):
        if not isinstance(raw.get(key), str):
            raise RewardSpecError(f"{field}.{key}: must be a template string, e.g. '{{{{sample.output_text}}}}'")
    problem = grader_problem(raw)
    if problem is not None:
        raise RewardSpecError(f"{field}{'.' if problem[0] else ''}{problem[0]}: {problem[1]}")
    if kind == "string_check" and raw.get("operation") not in STRING_OPERATIONS:
        raise RewardSpecError(f"{field}.operation: must be one of {', '.join(STRING_OPERATIONS)}, "
                              f"got {raw.get('operation')!r:.40}")
    if kind == "text_similarity" and raw.get("evaluation_metric") not in SIMILARITY_METRICS:
        raise RewardSpecError(f"{field}.evaluation_metric: the local platform computes "
                              f"{', '.join(SIMILARITY_METRICS)}; got {raw.get('evaluation_metric')!r:.40}")
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
    """A declarative grader's score of ``completion`` for the dataset row ``item`` (in [0, 1])."""
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

"""OpenAI's declarative graders for reinforcement fine-tuning, checked and applied (pure): the ones
safe to run without user code, ``string_check`` and ``text_similarity``.

A grader's ``input`` and ``reference`` are templates: ``{{sample.output_text}}`` is the sampled
answer, ``{{item.<field>}}`` a field of the training line (``rows_for``'s ``item``). A ``python``
grader is refused: user code never runs in the shared daemon; a reward function runs in the user's
own process with ``LLMFinetune(train_mode="RFT", reward=fn)``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from qfnb.protocol import textmetrics

__all__ = ["GraderProblem", "check_grader", "grade"]

STRING_OPS = ("eq", "ne", "like", "ilike")
#: text_similarity metrics graded here (cosine needs an embedding model; gleu and meteor a library not kept)
SIMILARITY = ("fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_l")
PYTHON_REFUSAL = ("python graders run user code, and user code never runs in the shared local daemon; write the "
                  "reward as a Python function and train with LLMFinetune(train_type=..., dataset=..., "
                  "train_mode=\"RFT\", reward=fn): it runs in your own process")
_FIELD = re.compile(r"\{\{\s*([a-zA-Z_][\w.]*)\s*\}\}")


class GraderProblem(ValueError):
    """A grader the platform cannot run; ``field`` names where (``method.reinforcement.grader.type``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_grader(raw: Any, field: str = "grader") -> dict[str, Any]:
    """``raw`` as a grader this module runs, or GraderProblem naming the field."""
    if not isinstance(raw, Mapping):
        raise GraderProblem(field, "must be an object with a 'type'")
    kind = raw.get("type")
    if kind == "python":
        raise GraderProblem(f"{field}.type", PYTHON_REFUSAL)
    if kind not in ("string_check", "text_similarity"):
        raise GraderProblem(f"{field}.type", f"must be 'string_check' or 'text_similarity' on the local platform "
                            f"(model graders and multi graders are not run here), got {kind!r:.40}")
    for key in ("input", "reference"):
        if not isinstance(raw.get(key), str):
            raise GraderProblem(f"{field}.{key}", "is required: a template such as '{{sample.output_text}}'")
    if kind == "string_check" and raw.get("operation") not in STRING_OPS:
        raise GraderProblem(f"{field}.operation", f"must be one of {', '.join(STRING_OPS)}, got "
                            f"{raw.get('operation')!r:.40}")
    if kind == "text_similarity" and raw.get("evaluation_metric") not in SIMILARITY:
        raise GraderProblem(f"{field}.evaluation_metric", f"must be one of {', '.join(SIMILARITY)} on the local "
                            f"platform, got {raw.get('evaluation_metric')!r:.40}")
    keys = ("type", "name", "input", "reference", "operation" if kind == "string_check" else "evaluation_metric")
    return {k: raw[k] for k in keys if k in raw}


def render(template: str, output_text: str, item: Mapping[str, Any]) -> str:
    """``template`` with ``{{sample.output_text}}`` and ``{{item.a.b}}`` filled in (a missing item
    field renders empty; a non-string one as JSON)."""

    def value(match: re.Match[str]) -> str:
        path = match.group(1).split(".")
        if path[0] == "sample":
            return output_text if path[1:] == ["output_text"] else ""
        node: Any = item if path[0] == "item" else None
        for key in path[1:]:
            node = node.get(key) if isinstance(node, Mapping) else None
        return "" if node is None else node if isinstance(node, str) else json.dumps(node, ensure_ascii=False)

    return _FIELD.sub(value, template)


def grade(grader: Mapping[str, Any], output_text: str, item: Mapping[str, Any]) -> float:
    """The grader's score of one sampled answer, in [0, 1]."""
    got = render(str(grader["input"]), output_text, item)
    ref = render(str(grader["reference"]), output_text, item)
    if grader["type"] == "string_check":
        op = grader["operation"]
        if op in ("eq", "ne"):
            return float((got == ref) == (op == "eq"))
        return float(ref in got if op == "like" else ref.lower() in got.lower())
    metric = grader["evaluation_metric"]
    if metric == "fuzzy_match":
        return difflib.SequenceMatcher(None, got, ref).ratio()
    if metric == "bleu":
        return textmetrics.sentence_bleu4(ref, got)
    return textmetrics.rouge(ref, got)[metric]

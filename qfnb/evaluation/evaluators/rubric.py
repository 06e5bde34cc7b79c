"""Judge rubrics: what a judge is asked, versioned and hashed, and what it is allowed to see.

A :class:`Rubric` holds the prompt template, criteria, steps and scale. Its ``hash`` (of all of
them) is stored with every judged result, so two results are comparable only when their rubric
hashes match. ``uses_reference`` decides whether the reference answer is shown to the judge: a
template that shows ``{reference}`` must say so, and a rubric that does not use the reference
never receives it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .._errors import invalid

PLACEHOLDERS = ("criteria", "steps", "prompt", "response", "reference", "min_score", "max_score",
                "response_a", "response_b")


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill the known ``{placeholders}`` only; other braces (JSON, code) stay as they are."""
    out = template
    for key in PLACEHOLDERS:
        if key in values:
            out = out.replace("{" + key + "}", str(values[key]))
    return out


@dataclass(frozen=True)
class Rubric:
    """A versioned judge prompt. ``kind`` is ``"score"`` (one answer, a number in
    ``[min_score, max_score]``) or ``"pairwise"`` (two answers, ``A``/``B``/``tie``)."""

    name: str
    template: str
    criteria: str = ""
    steps: str = ""
    min_score: int = 0
    max_score: int = 5
    uses_reference: bool = True
    version: str = "1"
    kind: str = "score"

    def __post_init__(self) -> None:
        if self.kind not in ("score", "pairwise"):
            raise invalid("kind", f"must be 'score' or 'pairwise', got {self.kind!r}")
        needed = ("{response}",) if self.kind == "score" else ("{response_a}", "{response_b}")
        for token in needed:
            if token not in self.template:
                raise invalid("evaluation_prompt", f"must contain {token} (where the model output goes)")
        shows = "{reference}" in self.template
        if shows and not self.uses_reference:
            raise invalid("uses_reference", "the template shows {reference} but the rubric says the judge "
                                            "must not see the reference: remove it or set uses_reference=True")
        if self.uses_reference and not shows:
            raise invalid("uses_reference", "the rubric uses the reference but the template has no {reference}")
        if self.kind == "score" and self.max_score <= self.min_score:
            raise invalid("prompt_max_score", f"must be greater than prompt_min_score ({self.min_score})")

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of every field: the judge prompt's identity."""
        blob = json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def prompt(self, *, prompt: str, reference: str = "", **responses: str) -> str:
        """The judge prompt; the reference is filled in only when the rubric uses it."""
        values: dict[str, Any] = {"criteria": self.criteria, "steps": self.steps, "prompt": prompt,
                                  "min_score": self.min_score, "max_score": self.max_score, **responses}
        if self.uses_reference:
            values["reference"] = reference
        return render(self.template, values)

    def info(self) -> dict[str, Any]:
        """What a result records about the rubric."""
        return {"rubric": self.name, "rubric_version": self.version, "rubric_hash": self.hash,
                "uses_reference": self.uses_reference}


PAIRWISE_TEMPLATE = """你是一名公正的裁判。You are an impartial judge. Compare two answers to the same question.

评价标准 (criteria):
{criteria}

【问题 / question】
{prompt}

【标准答案 / reference answer】
{reference}

【回答 A / answer A】
{response_a}

【回答 B / answer B】
{response_b}

Do not let the order of the answers or their length influence you. 只按以下格式回答 / reply exactly:
Winner: A, B or tie
Reason: <one sentence>
"""
PAIRWISE_CRITERIA = ("Which answer is more correct and complete, agrees with the reference, and is clear and "
                     "concise? 哪个回答更正确、完整、与标准答案一致且清晰？")


def pairwise_rubric(*, uses_reference: bool = True, criteria: str = PAIRWISE_CRITERIA,
                    template: str | None = None, name: str = "pairwise-default", version: str = "1") -> Rubric:
    """The default A-vs-B rubric (the reference section is dropped when ``uses_reference=False``)."""
    text = template or PAIRWISE_TEMPLATE
    if template is None and not uses_reference:
        text = text.replace("【标准答案 / reference answer】\n{reference}\n\n", "")
    return Rubric(name, text, criteria=criteria, uses_reference=uses_reference, version=version, kind="pairwise")

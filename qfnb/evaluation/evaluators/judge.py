"""LLM-as-judge: a chat/completion model scores the MODEL'S OUTPUT against the reference.

(The official SDK's ``LocalJudgeEvaluator`` renders the reference where the output belongs, so
it grades the answer key; here the template's ``{response}`` is always the model output.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressArg
from qfnb.protocol.console.textmetrics import as_text

from .._errors import invalid
from ..base import EvalInput, LocalEvaluator, Sample
from ..llm import LLMTarget, as_prompt, as_target, embedded_chat
from .rubric import Rubric

DEFAULT_CRITERIA = (
    "1. 回答是否正确、完整地解决了问题（correctness and completeness）；\n"
    "2. 回答与标准答案的含义是否一致（agreement with the reference）；\n"
    "3. 表达是否清晰、简洁、没有无关内容（clarity）。"
)
DEFAULT_STEPS = (
    "1. 阅读问题，理解要求；\n"
    "2. 阅读标准答案；\n"
    "3. 阅读待评估的回答，逐条对照评价标准；\n"
    "4. 给出一个整数评分和简短理由。"
)
DEFAULT_TEMPLATE = """你是一名公正的裁判，负责评估一个AI助手对问题的回答。You are an impartial judge.

评价标准 (criteria):
{criteria}

评分步骤 (steps):
{steps}

【问题 / question】
{prompt}

【待评估的回答 / answer to grade】
{response}

【标准答案 / reference answer】（没有标准答案时为空）
{reference}

请给出 {min_score} 到 {max_score} 之间的整数评分：回答正确且与标准答案含义一致则给高分，
有明显错误或答非所问则给低分。只按以下格式回答：
评分: <整数>
原因: <一句话理由>
"""
#: The default template without the reference (a rubric with ``uses_reference=False``).
DEFAULT_TEMPLATE_NO_REFERENCE = (
    DEFAULT_TEMPLATE.replace("【标准答案 / reference answer】（没有标准答案时为空）\n{reference}\n\n", "")
    .replace("回答正确且与标准答案含义一致则给高分", "回答正确、完整则给高分")
)
DEFAULT_CRITERIA_NO_REFERENCE = (
    "1. 回答是否正确、完整地解决了问题（correctness and completeness）；\n"
    "2. 表达是否清晰、简洁、没有无关内容（clarity）。"
)
DEFAULT_STEPS_NO_REFERENCE = (
    "1. 阅读问题，理解要求；\n"
    "2. 阅读待评估的回答，逐条对照评价标准；\n"
    "3. 给出一个整数评分和简短理由。"
)

_NUM = r"(-?\d+(?:\.\d+)?)"
_LABELLED = re.compile(
    r"(?:评分|得分|分数|打分|score|rating|grade)\s*[\"'“”]?\s*[:：=]?\s*[\"'“”]?\s*(?:为|是)?\s*" + _NUM,
    re.IGNORECASE,
)
_FRACTION = re.compile(_NUM + r"\s*(?:/|／|out of)\s*(\d+)", re.IGNORECASE)
_FEN = re.compile(_NUM + r"\s*分")
_BARE = re.compile(r"^\s*" + _NUM + r"\s*[.。]?\s*$")


def parse_judge_score(text: str, max_score: float, min_score: float = 0) -> float | None:
    """The score in a judge's reply, or ``None`` if there is no number in range.

    Tried in order: a labelled score (``评分: 4``, ``"score": "4"``, ``Score = 4``), a
    fraction (``4/5``), ``4分``, then a reply that is only a number.
    """
    text = as_text(text)
    for raw in [m.group(1) for pattern in (_LABELLED, _FRACTION, _FEN, _BARE) for m in pattern.finditer(text)]:
        value = float(raw)
        if min_score <= value <= max_score:
            return value
    return None


class LocalJudgeEvaluator(LocalEvaluator):
    """Ask ``model`` to grade each output; metrics ``{metric_name}`` (float or empty when the
    reply has no valid score) and ``{metric_name}_judgement`` (the judge's raw reply).

    ``model`` is a ``ChatCompletion`` / ``Completion`` / ``Service`` or a callable
    ``prompt -> text``; ``judge_kwargs`` are passed to each call (e.g. ``temperature``).
    """

    def __init__(self, model: Any = None, *, metric_name: str = "judge_score",
                 evaluation_prompt: str = DEFAULT_TEMPLATE, criteria: str = DEFAULT_CRITERIA,
                 prompt_steps: str = DEFAULT_STEPS, prompt_max_score: int = 5, prompt_min_score: int = 0,
                 concurrency: int = 4, judge_kwargs: Mapping[str, Any] | None = None,
                 uses_reference: bool | None = None, rubric: Rubric | None = None) -> None:
        if not metric_name:
            raise invalid("metric_name", "must not be empty")
        if rubric is None:
            if uses_reference is False and evaluation_prompt == DEFAULT_TEMPLATE:
                evaluation_prompt = DEFAULT_TEMPLATE_NO_REFERENCE
                criteria = DEFAULT_CRITERIA_NO_REFERENCE if criteria == DEFAULT_CRITERIA else criteria
                prompt_steps = DEFAULT_STEPS_NO_REFERENCE if prompt_steps == DEFAULT_STEPS else prompt_steps
            shows = "{reference}" in evaluation_prompt
            default = evaluation_prompt in (DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_NO_REFERENCE)
            rubric = Rubric("default" if default else "custom", evaluation_prompt, criteria, prompt_steps,
                            prompt_min_score, prompt_max_score,
                            uses_reference=shows if uses_reference is None else uses_reference)
        elif rubric.kind != "score":
            raise invalid("rubric", "LocalJudgeEvaluator scores one answer: give a rubric of kind 'score'")
        # no model: a chat model on the embedded local platform (offline), whatever else is configured
        self._target = as_target(model if model is not None else embedded_chat())
        self.rubric = rubric
        self.metric_name = metric_name
        self.evaluation_prompt = rubric.template
        self.criteria = rubric.criteria
        self.prompt_steps = rubric.steps
        self.prompt_max_score = rubric.max_score
        self.prompt_min_score = rubric.min_score
        self.concurrency = concurrency
        self.judge_kwargs = dict(judge_kwargs or {})

    @property
    def judge_target(self) -> LLMTarget:
        """The judge model as an evaluation target (its tag and identity)."""
        return self._target

    def judge_info(self) -> dict[str, Any]:
        """What the result records about this judge: which model, which rubric (hashed)."""
        return {"metric": self.metric_name, "judge": self._target.tag, **self.rubric.info(),
                "scale": [self.rubric.min_score, self.rubric.max_score]}

    def build_prompt(self, input: EvalInput, reference: str, output: str) -> str:
        """The judge prompt for one sample: ``{response}`` is the model output; the reference is
        shown only when the rubric uses it."""
        return self.rubric.prompt(prompt=as_prompt(input), reference=as_text(reference), response=as_text(output))

    def _result(self, reply: Any) -> dict[str, Any]:
        judgement_key = f"{self.metric_name}_judgement"
        if isinstance(reply, BaseException):
            return {self.metric_name: None, judgement_key: f"<judge failed: {reply}>"}
        score = parse_judge_score(reply, self.prompt_max_score, self.prompt_min_score)
        return {self.metric_name: score, judgement_key: reply}

    async def aevaluate_many(self, samples: Sequence[Sample], progress: ProgressArg = None) -> list[dict[str, Any]]:
        """Each sample's score, the judge asked ``concurrency`` at a time; ``progress`` hears of each
        reply as it comes (None: the judge's calls draw their own bar in a kernel)."""
        prompts = [self.build_prompt(s.input, s.reference, s.output) for s in samples]
        replies = await self._target.run(prompts, self.concurrency, self.judge_kwargs, progress)
        return [self._result(r) for r in replies]

    async def aevaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return (await self.aevaluate_many([Sample(0, "", input, reference, output)]))[0]

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return dict(sync.run(self.aevaluate(input, reference, output)))

    def summarize(self, frame: pd.DataFrame) -> dict[str, Any] | None:
        scores = pd.to_numeric(frame.get(self.metric_name), errors="coerce").astype(float)
        return {self.metric_name: float(scores.mean()) if scores.notna().any() else None,
                f"{self.metric_name}_unparsed": int(scores.isna().sum())}

    def __repr__(self) -> str:
        return f"LocalJudgeEvaluator(model={self._target.tag!r}, metric_name={self.metric_name!r})"

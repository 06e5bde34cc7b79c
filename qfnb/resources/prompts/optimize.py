"""The platform's prompt optimisation and evaluation behind ``Prompt.optimize`` and ``Prompt.evaluate``
(the official SDK's): an optimisation task polled to its end; each prompt rendered per scene and sent to
a model, then the answers summarised per prompt and scored per scene by the platform's console."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qfnb._core.errors import RequestError, TimeoutError, ValidationError
from qfnb.resources import Prompt as PromptResource
from qfnb.resources.console.consts import PromptScoreStandard

__all__ = ["PromptEvaluateResult", "evaluate_prompts", "optimization_operations", "optimize_template"]

#: ``singleOptimize/info``'s ``processStatus`` of a finished and of a failed task
OPTIMIZE_FINISHED, OPTIMIZE_FAILED = 2, 3


class Renders(Protocol):
    """What evaluation needs of a prompt: its template and its rendering."""

    template: str

    def render(self, **kwargs: Any) -> tuple[str, str | None]: ...


@dataclass
class PromptEvaluateResult:
    """One prompt's evaluation: per scene ``new_prompt``, ``variables``, ``expected_target``,
    ``response`` and ``score``; the platform's ``summary`` of the prompt."""

    prompt: Any
    scene: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""


def optimization_operations(optimize_quality: bool, simplify_prompt: bool, iteration_round: int,
                            enable_cot: bool) -> list[dict[str, int]]:
    """The ``operations`` of an optimisation task (op types 1-4, as the console numbers them)."""
    if iteration_round not in (1, 2):
        raise ValidationError("iteration_round", f"must be 1 or 2, got {iteration_round!r}")
    return [{"opType": 1, "payload": int(bool(optimize_quality))}, {"opType": 2, "payload": int(bool(simplify_prompt))},
            {"opType": 3, "payload": iteration_round}, {"opType": 4, "payload": int(bool(enable_cot))}]


def optimize_template(template: str, operations: list[dict[str, int]], *, app_id: int | None = None,
                      service_name: str | None = None, poll_interval: float = 1.0, timeout: float | None = None,
                      sleep: Callable[[float], object] = time.sleep, **kwargs: Any) -> str:
    """Create an optimisation task for ``template`` and poll it (every ``poll_interval`` s, for at most
    ``timeout`` s: None waits as the official SDK does) to its optimised text."""
    created = PromptResource.create_optimiztion_task(template, operations, app_id=app_id, service_name=service_name,
                                                     **kwargs)
    task_id = created["result"]["id"]
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        info = PromptResource.get_optimization_task(task_id, **kwargs)["result"]
        status = info.get("processStatus")
        if status == OPTIMIZE_FINISHED:
            return str(info["optimizeContent"])
        if status == OPTIMIZE_FAILED:
            raise RequestError(f"prompt optimization task {task_id} failed", body=info)
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"prompt optimization task {task_id} not finished after {timeout} s "
                               f"(processStatus={status!r})")
        sleep(poll_interval)


def _checked_scenes(scenes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if not isinstance(scenes, Sequence) or not scenes:
        raise ValidationError("scenes", 'must be a non-empty list of {"args": {...}, "expected": "..."}')
    for j, scene in enumerate(scenes):
        if not isinstance(scene, Mapping) or not isinstance(scene.get("args"), Mapping):
            raise ValidationError(f"scenes[{j}].args", "must be a dict of the prompt's variables")
        if "expected" not in scene:
            raise ValidationError(f"scenes[{j}].expected", "is required (the answer the scene expects)")
    return list(scenes)


def evaluate_prompts(prompts: Sequence[Renders], scenes: Sequence[Mapping[str, Any]], model: Any,
                     standard: PromptScoreStandard = PromptScoreStandard.Semantic) -> list[PromptEvaluateResult]:
    """Each prompt rendered with each scene's ``args`` and sent to ``model`` (a ``Completion`` or anything
    whose ``do(text)`` answers ``["result"]``); the platform then summarises each prompt's answers and
    scores each scene's answers (by ``standard``) against its ``expected``. Every input is checked before
    the first call."""
    if not prompts:
        raise ValidationError("prompt_list", "must name at least one prompt")
    checked = _checked_scenes(scenes)
    standard = PromptScoreStandard(standard)
    results = [PromptEvaluateResult(prompt=p, scene=[
        {"new_prompt": p.render(**s["args"])[0], "variables": dict(s["args"]), "expected_target": s["expected"]}
        for s in checked]) for p in prompts]
    for result in results:
        for scene in result.scene:
            scene["response"] = model.do(scene["new_prompt"])["result"]
    summary_request = [{"prompt": r.prompt.template, "scenes": [dict(s) for s in r.scene],
                        "response_list": [s["response"] for s in r.scene]} for r in results]
    summaries = PromptResource.evaluation_summary(summary_request)["result"]["responses"]
    score_request = [{"scene": s["expected"], "response_list": [r.scene[j]["response"] for r in results]}
                     for j, s in enumerate(checked)]
    scores = PromptResource.evaluation_score(standard.value, score_request)["result"]["scores"]
    for i, result in enumerate(results):
        result.summary = summaries[i]["response"]
        for j, scene in enumerate(result.scene):
            scene["score"] = scores[j][i]
    return results

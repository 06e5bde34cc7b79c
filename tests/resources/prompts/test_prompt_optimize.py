"""``Prompt.optimize`` and ``Prompt.evaluate`` (qfnb.resources.prompts.optimize), the official SDK's:
an optimisation task polled to its end, and prompts rendered per scene, answered by a model, then
summarised and scored by the console (its calls doubled here, their wire shapes are the builders')."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb._core.errors import RequestError, TimeoutError, ValidationError
from qfnb.resources.console.consts import PromptScoreStandard
from qfnb.resources.prompts import optimize
from qfnb.resources.prompts.template import Prompt


class Console:
    """The console calls the module makes, answered as the platform answers them."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.sent: list[tuple[str, Any]] = []

    def create_optimiztion_task(self, content: str, operations: list[Any], **kwargs: Any) -> dict[str, Any]:
        self.sent.append(("create", {"content": content, "operations": operations, **kwargs}))
        return {"result": {"id": "task-7"}}

    def get_optimization_task(self, task_id: str, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(("info", task_id))
        status = self.statuses.pop(0)
        return {"result": {"processStatus": status, "optimizeContent": "Answer {var1} step by step."}}

    def evaluation_summary(self, data: list[Any]) -> dict[str, Any]:
        self.sent.append(("summary", data))
        return {"result": {"responses": [{"response": f"summary of {d['prompt']}"} for d in data]}}

    def evaluation_score(self, type: int, data: list[Any]) -> dict[str, Any]:
        self.sent.append(("score", (type, data)))
        return {"result": {"scores": [[len(r) for r in d["response_list"]] for d in data]}}


class Model:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def do(self, prompt: str) -> dict[str, Any]:
        self.asked.append(prompt)
        return {"result": f"answer to {prompt}"}


@pytest.fixture()
def console(monkeypatch: pytest.MonkeyPatch) -> Console:
    double = Console([1, 1, 2])
    monkeypatch.setattr(optimize, "PromptResource", double)
    return double


def test_optimize_waits_for_the_task_and_keeps_the_identifier(console: Console) -> None:
    waits: list[float] = []
    prompt = Prompt(template="Answer [var1]", identifier="[]")
    text = optimize.optimize_template(prompt.template, optimize.optimization_operations(True, False, 2, True),
                                      app_id=12, poll_interval=0.5, sleep=waits.append)
    assert text == "Answer {var1} step by step." and waits == [0.5, 0.5]
    kind, body = console.sent[0]
    assert kind == "create" and body["content"] == "Answer [var1]" and body["app_id"] == 12
    assert body["operations"] == [{"opType": 1, "payload": 1}, {"opType": 2, "payload": 0},
                                  {"opType": 3, "payload": 2}, {"opType": 4, "payload": 1}]
    assert [k for k, _ in console.sent] == ["create", "info", "info", "info"]


def test_the_method_answers_a_prompt(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qfnb.resources.prompts.optimize.time.sleep", lambda _s: None)
    optimized = Prompt(template="test template {var1}").optimize(simplify_prompt=True)
    assert isinstance(optimized, Prompt) and optimized.template == "Answer {var1} step by step."
    assert optimized.variables == ["var1"]


def test_a_failed_or_late_task_and_a_bad_round_say_so(console: Console) -> None:
    console.statuses[:] = [3]
    with pytest.raises(RequestError, match="task-7 failed"):
        optimize.optimize_template("t", [], sleep=lambda _s: None)
    console.statuses[:] = [1] * 5
    with pytest.raises(TimeoutError, match="processStatus=1"):
        optimize.optimize_template("t", [], timeout=0.0, sleep=lambda _s: None)
    with pytest.raises(ValidationError, match="iteration_round"):
        Prompt(template="t").optimize(iteration_round=3)  # type: ignore[arg-type]


def test_evaluate_answers_each_scene_then_the_console_summarises_and_scores(console: Console) -> None:
    prompts = [Prompt(f"test{i} {{arg}}") for i in range(2)]
    scenes = [{"args": {"arg": f"arg{j}"}, "expected": f"expected{j}"} for j in range(3)]
    model = Model()
    results = Prompt.evaluate(prompts, scenes, model, PromptScoreStandard.Exact)
    assert model.asked == [f"test{i} arg{j}" for i in range(2) for j in range(3)]
    assert [r.summary for r in results] == ["summary of test0 {arg}", "summary of test1 {arg}"]
    first = results[1].scene[2]
    assert first == {"new_prompt": "test1 arg2", "variables": {"arg": "arg2"}, "expected_target": "expected2",
                     "response": "answer to test1 arg2", "score": len("answer to test1 arg2")}
    (_, (standard, score_request)) = console.sent[-1]
    assert standard == PromptScoreStandard.Exact.value
    assert score_request[0] == {"scene": "expected0", "response_list": ["answer to test0 arg0", "answer to test1 arg0"]}
    assert isinstance(results[0], Prompt.PromptEvaluateResult)


@pytest.mark.parametrize(("scenes", "field"), [
    ([], "scenes"), ([{"expected": "x"}], "scenes[0].args"), ([{"args": {"arg": 1}}], "scenes[0].expected")])
def test_bad_scenes_are_refused_before_any_call(console: Console, scenes: Any, field: str) -> None:
    model = Model()
    with pytest.raises(ValidationError) as caught:
        Prompt.evaluate([Prompt("t {arg}")], scenes, model)
    assert caught.value.field == field and not model.asked and not console.sent

"""Platform evaluators: evalStandardConf per the protocol, the task lifecycle, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qfnb import errors
from qfnb.evaluation import (
    EvaluationError,
    EvaluationManager,
    ExactMatchEvaluator,
    ManualEvaluatorDimension,
    QianfanManualEvaluator,
    QianfanRefereeEvaluator,
    QianfanRuleEvaluator,
    build_eval_standard_conf,
)
from qfnb.evaluation.evaluators.platform import REFEREE_TEMPLATE, REFEREE_TEMPLATE_NAME
from qfnb.evaluation.runs.platform import arun_platform_evaluation
from qfnb.model import Model
from qfnb.protocol import ProtocolError


def test_rule_conf() -> None:
    conf = build_eval_standard_conf([QianfanRuleEvaluator(using_similarity=True, using_accuracy=True,
                                                          stop_words="bos:/b/stop.txt")])
    assert conf == {"evalMode": "rule", "scoreModes": ["similarity", "accuracy"], "stopWordsPath": "bos:/b/stop.txt"}
    assert build_eval_standard_conf([QianfanRuleEvaluator(using_accuracy=True)]) == {
        "evalMode": "rule", "scoreModes": ["accuracy"]}


def test_referee_conf() -> None:
    conf = build_eval_standard_conf([QianfanRefereeEvaluator(app_id=123, prompt_steps="1. read", prompt_max_score=10)])
    assert conf == {"evalMode": "model", "appId": 123, "prompt": {
        "templateName": REFEREE_TEMPLATE_NAME, "templateContent": REFEREE_TEMPLATE, "metric": "综合得分",
        "steps": "1. read", "maxScore": 10}}
    for placeholder in ("{{src}}", "{{tgt}}", "{{prediction}}", "{{max_score}}"):
        assert placeholder in REFEREE_TEMPLATE


def test_manual_conf_puts_satisfaction_first() -> None:
    ev = QianfanManualEvaluator(evaluation_dimensions=[
        "fluency", ManualEvaluatorDimension("满意度"), {"dimension": "safety", "description": "no harm"}])
    assert build_eval_standard_conf([ev]) == {"evalMode": "manual", "evaluationDimension": [
        {"dimension": "满意度"}, {"dimension": "fluency"}, {"dimension": "safety", "description": "no harm"}]}
    assert QianfanManualEvaluator().conf() == {"evaluationDimension": [{"dimension": "满意度"}]}


def test_modes_join_in_evaluator_order() -> None:
    conf = build_eval_standard_conf([QianfanRuleEvaluator(using_accuracy=True), QianfanRefereeEvaluator(app_id=7),
                                     QianfanManualEvaluator()])
    assert conf["evalMode"] == "rule,model,manual"
    assert {"scoreModes", "appId", "prompt", "evaluationDimension"} <= set(conf)


@pytest.mark.parametrize(("build", "field"), [
    (lambda: QianfanRuleEvaluator(), "using_similarity"),
    (lambda: QianfanRuleEvaluator(using_accuracy=True, stop_words=" "), "stop_words"),
    (lambda: QianfanRefereeEvaluator(app_id=0), "app_id"),
    (lambda: QianfanRefereeEvaluator(app_id="12"), "app_id"),
    (lambda: QianfanRefereeEvaluator(app_id=1, prompt_max_score=0), "prompt_max_score"),
    (lambda: QianfanRefereeEvaluator(app_id=1, prompt_metrics=""), "prompt_metrics"),
    (lambda: QianfanManualEvaluator(["a", "b", "c", "d"]), "evaluation_dimensions"),  # + 满意度 = 5
    (lambda: QianfanManualEvaluator(["a", "a"]), "evaluation_dimensions"),
    (lambda: QianfanManualEvaluator([3]), "evaluation_dimensions"),
])
def test_evaluator_validation(build: Any, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        build()
    assert info.value.field == field


def test_manager_validation() -> None:
    rule = QianfanRuleEvaluator(using_accuracy=True)
    with pytest.raises(ProtocolError, match="exactly one"):
        EvaluationManager()
    with pytest.raises(ProtocolError, match="exactly one"):
        EvaluationManager(local_evaluators=[ExactMatchEvaluator()], qianfan_evaluators=[rule])
    with pytest.raises(ProtocolError, match="at most one QianfanRuleEvaluator"):
        EvaluationManager(qianfan_evaluators=[rule, QianfanRuleEvaluator(using_similarity=True)])
    with pytest.raises(ProtocolError, match="not a Qianfan"):
        EvaluationManager(qianfan_evaluators=[ExactMatchEvaluator()])  # type: ignore[list-item]
    with pytest.raises(ProtocolError, match="not a LocalEvaluator"):
        EvaluationManager(local_evaluators=[rule])  # type: ignore[list-item]
    with pytest.raises(ProtocolError, match="pre_processors"):
        EvaluationManager(qianfan_evaluators=[rule], pre_processors=[str.strip])


class FakeConsole:
    """A double of ``qfnb.resources.console.Model``'s evaluation calls (async side)."""

    def __init__(self, states: list[str], report: Any = None) -> None:
        self.states = list(states)
        self.report = report if report is not None else [
            {"modelName": "m", "modelVersion": "1", "effectMetric": {"accuracy": 0.5, "bleu4": "12.5%"}}]
        self.calls: list[tuple[str, Any]] = []

    async def acreate_evaluation_task(self, **kwargs: Any) -> dict:
        self.calls.append(("create", kwargs))
        return {"log_id": "x", "result": {"evalId": 41, "evalIdStr": "ame-41"}}

    async def aget_evaluation_info(self, eval_id: str) -> dict:
        self.calls.append(("detail", eval_id))
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"result": {"evaluationId": 41, "state": state}}

    async def aget_evaluation_result(self, eval_id: str) -> dict:
        self.calls.append(("report", eval_id))
        return {"result": self.report}

    async def astop_evaluation_task(self, eval_id: str) -> dict:
        self.calls.append(("cancel", eval_id))
        return {"result": {"result": True}}


async def test_platform_task_lifecycle() -> None:
    console = FakeConsole(["Pending", "Doing", "Done"])
    rule = QianfanRuleEvaluator(using_accuracy=True)
    result = await arun_platform_evaluation([rule], [Model(set_id="am-1", version_id="amv-1")], "ds-9", console=console,
                                            poll_interval=0)
    kind, body = console.calls[0]
    assert kind == "create"
    assert body["version_info"] == [{"modelId": "am-1", "modelVersionId": "amv-1"}]
    assert body["dataset_id"] == "ds-9"
    assert body["eval_config"] == {"evalMode": "rule", "scoreModes": ["accuracy"]}
    assert body["name"].startswith("sdk_eval_") and len(body["name"]) == len("sdk_eval_") + 11
    assert [c[0] for c in console.calls] == ["create", "detail", "detail", "detail", "report"]
    assert result.task_id == "ame-41" and result.state == "Done"
    assert result.metrics == {"m_1": {"accuracy": 0.5, "bleu4": "12.5%"}}
    assert result.metrics_df.loc["m_1"].to_dict() == {"accuracy": 0.5, "bleu4": pytest.approx(0.125)}


async def test_platform_manual_waits_for_people() -> None:
    console = FakeConsole(["Pending", "DoingWithManualBegin"])
    result = await arun_platform_evaluation([QianfanManualEvaluator()], [("am-1", "amv-1")], 5, console=console,
                                            poll_interval=0)
    assert result.state == "DoingWithManualBegin" and result.metrics == {}
    assert "report" not in [c[0] for c in console.calls]


@pytest.mark.parametrize("state", ["Failed", "Stopped"])
async def test_platform_failure_raises(state: str) -> None:
    console = FakeConsole(["Doing", state])
    with pytest.raises(EvaluationError, match=state):
        await arun_platform_evaluation([QianfanRuleEvaluator(using_similarity=True)], [("a", "b")], 1,
                                       console=console, poll_interval=0)


async def test_platform_cancel_stops_the_task() -> None:
    console = FakeConsole(["Doing"])
    task = asyncio.create_task(arun_platform_evaluation(
        [QianfanRuleEvaluator(using_similarity=True)], [("a", "b")], 1, console=console, poll_interval=0.01))
    while [c[0] for c in console.calls].count("detail") < 2:  # cancel while it waits between polls
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ("cancel", "ame-41") in console.calls


async def test_platform_timeout_stops_the_task() -> None:
    console = FakeConsole(["Doing"])
    with pytest.raises(errors.TimeoutError):  # qfnb's (the built-in TimeoutError before)
        await arun_platform_evaluation([QianfanRuleEvaluator(using_similarity=True)], [("a", "b")], 1,
                                       console=console, poll_interval=0.01, timeout=0.03)
    assert console.calls[-1] == ("cancel", "ame-41")


async def test_platform_needs_published_models_and_a_platform_dataset() -> None:
    rule = QianfanRuleEvaluator(using_similarity=True)
    with pytest.raises(ProtocolError, match=r"published qfnb\.model\.Model"):
        await arun_platform_evaluation([rule], [object()], 1, console=FakeConsole(["Done"]), poll_interval=0)
    with pytest.raises(ProtocolError, match="modelVersionId"):
        await arun_platform_evaluation([rule], [Model(set_id=3)], 1, console=FakeConsole(["Done"]), poll_interval=0)
    with pytest.raises(ProtocolError, match="stored on the platform") as info:
        await arun_platform_evaluation([rule], [("a", "b")], object(), console=FakeConsole(["Done"]),
                                       poll_interval=0)
    assert info.value.field == "dataset"

"""The evaluation layer through the real client stack against the fake cloud (tests/fakes):
inference via ChatCompletion.abatch_do, similarity via Embedding, the platform task via
``qfnb.resources.console.Model`` (signed console calls, request bodies checked on the wire)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb.evaluation import (
    EmbeddingSimilarityEvaluator,
    EvaluationManager,
    ExactMatchEvaluator,
    LocalJudgeEvaluator,
    QianfanRefereeEvaluator,
    QianfanRuleEvaluator,
)
from qfnb.model import Model, Service
from qfnb.protocol import ProtocolError
from qfnb.resources import ChatCompletion, Completion, Embedding
from tests.fakes.cloud import Captured, FakeQianfan

DATA = [{"prompt": "hello", "response": [["echo[completions]: hello"]]},
        {"prompt": "你好", "response": [["something else"]]}]


def test_chat_and_completion_through_abatch_do(fake: FakeQianfan, make_config: Callable[..., Config]) -> None:
    cfg = make_config("oauth")
    chat = ChatCompletion(model="ERNIE-Speed-8K", config=cfg)
    comp = Completion(model="ERNIE-Speed-8K", config=cfg)
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    result = em.eval({"chat": chat, "comp": comp}, DATA, worker_num=2)
    outputs = result.samples_df
    assert outputs["chat/output"].tolist()[0].endswith(": hello")
    assert outputs["chat/output"].tolist()[1].endswith(": 你好")
    assert result.metrics["chat"]["accuracy"] == 0.0
    # each row sent exactly once per model (no warm-up duplicate)
    sent = [r for r in fake.requests if "/wenxinworkshop/" in r.path and r.json and ("messages" in r.json
                                                                                   or "prompt" in r.json)]
    assert len(sent) == 4
    assert sorted(str(r.json.get("messages", [{}])[-1].get("content") if "messages" in r.json
                      else r.json["prompt"]) for r in sent) == ["hello", "hello", "你好", "你好"]


def test_similarity_through_embedding(fake: FakeQianfan, make_config: Callable[..., Config]) -> None:
    cfg = make_config("oauth")
    # the fake embeds text t as [len(t), 1, 0.5]
    sim = EmbeddingSimilarityEvaluator(Embedding(model="Embedding-V1", config=cfg))
    em = EvaluationManager(local_evaluators=[sim])
    frame = [{"prompt": "q", "response": "abcd", "output": "abcd"},
             {"prompt": "q", "response": "a", "output": "abcdefgh"}]
    result = em.eval_only(frame)
    sims = result.samples["similarity"].tolist()
    assert sims[0] == pytest.approx(1.0)
    a, b = [1.0, 1.0, 0.5], [8.0, 1.0, 0.5]
    want = sum(x * y for x, y in zip(a, b, strict=True)) / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)
    assert sims[1] == pytest.approx(want)


def test_judge_with_a_chat_model(fake: FakeQianfan, make_config: Callable[..., Config]) -> None:
    # the fake echoes the prompt back: the judge reply is the rendered prompt, which ends in the
    # reply format with no number -> unparsed; what matters is the prompt carried the OUTPUT
    judge = LocalJudgeEvaluator(ChatCompletion(model="ERNIE-Speed-8K", config=make_config("oauth")))
    em = EvaluationManager(local_evaluators=[judge])
    em.eval_only([{"prompt": "q", "response": "the-reference", "output": "the-output"}])
    sent = [r.json["messages"][-1]["content"] for r in fake.requests if r.json and "messages" in r.json]
    assert len(sent) == 1 and "the-output" in sent[0] and "the-reference" in sent[0]
    assert sent[0].index("the-output") < sent[0].index("the-reference")  # output in the graded slot


def test_platform_evaluation_via_console(fake: FakeQianfan, make_config: Callable[..., Config]) -> None:
    states = iter(["Pending", "Doing", "Done"])
    bodies: dict[str, list[Any]] = {}

    def record(name: str, reply: Callable[[Captured], Any]) -> Callable[[Captured], dict]:
        def handler(req: Captured) -> dict:
            fake.check_iam(req)
            bodies.setdefault(name, []).append(req.json)
            return {"log_id": "l", "result": reply(req)}
        return handler

    fake.route("POST", "/wenxinworkshop/modelrepo/eval/create")(
        record("create", lambda q: {"evalId": 7, "evalIdStr": "ame-7"}))
    fake.route("POST", "/wenxinworkshop/modelrepo/eval/detail")(
        record("detail", lambda q: {"evaluationId": 7, "state": next(states)}))
    fake.route("POST", "/wenxinworkshop/modelrepo/eval/report")(record("report", lambda q: [
        {"modelName": "sft", "modelVersion": "2", "effectMetric": {"accuracy": 0.75, "avgJudgeScore": 4.1}}]))
    cfg = make_config("iam", evaluation_online_polling_interval=0.01)
    em = EvaluationManager(qianfan_evaluators=[QianfanRuleEvaluator(using_accuracy=True),
                                               QianfanRefereeEvaluator(app_id=42)])
    result = em.eval([{"modelId": "am-1", "modelVersionId": "amv-2"}], "ds-3", config=cfg)
    create = bodies["create"][0]
    assert create["versionEvalInfo"] == [{"modelId": "am-1", "modelVersionId": "amv-2"}]
    assert create["datasetId"] == "ds-3"
    assert create["computeResourceConf"] == {"vmType": 1, "vmNumber": 8}
    conf = create["evalStandardConf"]
    assert conf["evalMode"] == "rule,model" and conf["scoreModes"] == ["accuracy"] and conf["appId"] == 42
    assert conf["prompt"]["metric"] == "综合得分" and conf["prompt"]["maxScore"] == 5
    assert bodies["detail"] == [{"id": "ame-7"}] * 3 and bodies["report"] == [{"id": "ame-7"}]
    assert result.metrics == {"sft_2": {"accuracy": 0.75, "avgJudgeScore": 4.1}}
    assert em.task_id == "ame-7"


def test_models_and_services_run_through_their_endpoint(fake: FakeQianfan,
                                                        make_config: Callable[..., Config]) -> None:
    cfg = make_config("oauth")
    svc = Service(id="svco-1", endpoint="my_sft", config=cfg)
    model = Model(set_id=11, version_id=22, name="sft", model_set_id="am-11", service=svc)
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    result = em.eval([model, svc], DATA[:1])
    assert list(result.metrics) == ["am-11_22_sft", "svco-1_my_sft"]
    assert result.samples_df["am-11_22_sft/output"].tolist() == ["echo[my_sft]: hello"]
    with pytest.raises(ProtocolError, match="no deployed service"):
        em.eval([Model(set_id=1, version_id=2)], DATA)

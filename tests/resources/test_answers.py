"""``resp.parsed``: the typed answer beside the raw dict, read from the local platform's real
answers (its routes over HTTP, engine doubles and the stand-in training worker), and lenient on
answers it does not expect. The official SDK's dict access is unchanged."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qfnb import ChatCompletion, Completion, Embedding, Reranker
from qfnb._core.config import Config
from qfnb._core.http.response import QfRequest, QfResponse
from qfnb.dataset import Dataset
from qfnb.protocol.wires.qianfan import answers
from qfnb.resources import Data, FineTune, Service
from qfnb.resources import Model as ModelAPI
from tests.fakes.local_platform import ServedPlatform

MSGS = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def local(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    return local_platform.config()


# ---------------------------------------------------------------------------- inference, real answers
def test_chat_answer_parses_as_chat_answer(local: Config) -> None:
    resp = ChatCompletion(model="Tiny-Chat", config=local).do(MSGS)
    answer = resp.parsed
    assert type(answer) is answers.ChatAnswer
    assert answer.result == resp["result"] != ""
    assert answer.usage.total_tokens == resp["usage"]["total_tokens"] > 0
    assert answer.id == resp["id"] and answer.is_truncated is resp["is_truncated"]
    assert resp.parsed is answer  # read once


def test_stream_chunks_parse_as_chat_chunks(local: Config) -> None:
    chunks = list(ChatCompletion(model="Tiny-Chat", config=local).do(MSGS, stream=True))
    assert len(chunks) > 1 and all(type(c.parsed) is answers.ChatChunk for c in chunks)
    assert "".join(c.parsed.result for c in chunks) == "".join(c["result"] for c in chunks)
    assert [c.parsed.is_end for c in chunks] == [c["is_end"] for c in chunks] and chunks[-1].parsed.is_end


def test_v2_chat_answer_reads_its_choices(local: Config) -> None:
    resp = ChatCompletion(version=2, model="Tiny-Chat", config=local).do(MSGS)
    choice = resp.parsed.choices[0]
    assert choice.message.content == resp["choices"][0]["message"]["content"] == resp.result
    assert choice.finish_reason == resp["choices"][0]["finish_reason"] and resp.parsed.model == resp["model"]
    chunks = list(ChatCompletion(version=2, model="Tiny-Chat", config=local).do(MSGS, stream=True))
    deltas = [c.parsed.choices[0].delta.content or "" for c in chunks if c.parsed.choices]
    assert deltas and "".join(deltas) == "".join(c["choices"][0]["delta"].get("content") or ""
                                                 for c in chunks if c["choices"])


def test_completion_embedding_and_reranker_answers(local: Config) -> None:
    done = Completion(model="Tiny-Chat", config=local).do("Once upon")
    assert type(done.parsed) is answers.CompletionAnswer and done.parsed.result == done["result"]
    vectors = Embedding(model="Tiny-Embed", config=local).do(["a", "b"])
    assert [d.embedding for d in vectors.parsed.data] == [d["embedding"] for d in vectors["data"]]
    assert [d.index for d in vectors.parsed.data] == [0, 1]
    ranked = Reranker(config=local).do("q", ["d", "e"])
    assert [(r.index, r.relevance_score) for r in ranked.parsed.results] == [
        (r["index"], r["relevance_score"]) for r in ranked["results"]]


def test_batch_results_parse_as_the_calls_answer_in_memory_and_from_a_file(local: Config, tmp_path: Path) -> None:
    chat = ChatCompletion(model="Tiny-Chat", config=local)
    prompts = [[{"role": "user", "content": f"count to {i}"}] for i in range(3)]
    kept = chat.batch_do(prompts, worker_num=2).results()
    read_back = chat.batch_do(prompts, worker_num=2, output_file=tmp_path / "out.jsonl").results()
    for results in (kept, read_back):
        assert [type(r.parsed) for r in results] == [answers.ChatAnswer] * 3
        assert [r.parsed.result for r in results] == [r["result"] for r in results]


def test_dict_access_is_unchanged(local: Config) -> None:
    resp = ChatCompletion(model="Tiny-Chat", config=local).do(MSGS)
    body = dict(resp.body)
    resp.parsed  # noqa: B018  (reading it changes nothing of the mapping)
    assert dict(resp) == body and resp["body"] is resp.body and resp["body"]["usage"] == body["usage"]
    assert resp["code"] == 200 and resp.get("result") == body["result"] and len(resp) == len(body)


def test_reading_parsed_is_what_imports_the_answer_models(local_platform: ServedPlatform) -> None:
    """A call never imports the models (pydantic's classes): only the first ``parsed`` does."""
    probe = ("import sys\nfrom qfnb import ChatCompletion\n"
             "resp = ChatCompletion(model='Tiny-Chat').do([{'role': 'user', 'content': 'hi'}])\n"
             "before = 'qfnb.protocol.wires.qianfan.answers' in sys.modules\n"
             "same = resp.parsed.result == resp['result']\n"
             "print(before, same, 'qfnb.protocol.wires.qianfan.answers' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **local_platform.env(), "PYTHONPATH": os.getcwd()})
    assert done.stdout.split() == ["False", "True", "True"], done.stdout + done.stderr


# the platform's documented answers of the calls the local platform does not serve
_PLUGIN = {"id": "as-p", "object": "plugin.result", "created": 1, "result": "ok", "is_truncated": False,
           "need_clear_history": False, "meta_info": {"plugin_id": "uuid-zhishiku"}, "log_id": "123",
           "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}
_IMAGE = {"id": "as-i", "object": "image", "created": 1, "usage": {"prompt_tokens": 5, "total_tokens": 5},
          "data": [{"object": "image", "b64_image": base64.b64encode(b"PNG!").decode(), "index": 0}]}


def test_plugin_text2image_and_image2text_answers_parse() -> None:
    plugin = _resp(json.loads(json.dumps(_PLUGIN)), "PluginAnswer").parsed
    assert (plugin.result, plugin.meta_info, plugin.log_id, plugin.usage.total_tokens) == (
        "ok", {"plugin_id": "uuid-zhishiku"}, "123", 3)
    image = json.loads(json.dumps(_IMAGE))
    image["data"][0]["image"] = b"PNG!"  # what with_decode="base64" adds
    item = _resp(image, "Text2ImageAnswer").parsed.data[0]
    assert (item.b64_image, item.image, item.index) == (_IMAGE["data"][0]["b64_image"], b"PNG!", 0)
    chunk = _resp({"result": "a cat", "sentence_id": 2, "is_end": True}, "Image2TextChunk").parsed
    assert (chunk.result, chunk.sentence_id, chunk.is_end) == ("a cat", 2, True)


# ---------------------------------------------------------------------------- console, real answers
def test_finetune_v2_answers_parse(local: Config) -> None:
    ds = Dataset.create_from_pyobj([{"prompt": f"{i}+{i}?", "response": str(2 * i)} for i in range(8)])
    ds = ds.save(qianfan_dataset_create_args={"name": "typed_ds"}, config=local)
    info = Data.get_dataset_info(ds.qianfan_dataset_id, config=local)
    version = info.parsed.result.version_info
    assert version.bml_dataset_id == info["result"]["versionInfo"]["bmlDatasetId"] != ""
    assert version.entity_count == info["result"]["versionInfo"]["entityCount"] == 8
    job = FineTune.V2.create_job(name="typed", model="Tiny-Chat", train_mode="SFT", config=local)
    assert job.parsed.result.job_id == job["result"]["jobId"] != ""
    task = FineTune.V2.create_task(
        job_id=job.parsed.result.job_id, params_scale="LoRA",
        hyper_params={"epoch": 1, "learningRate": 0.001, "batchSize": 2, "maxSeqLen": 128},
        dataset_config={"sourceType": "Platform", "versions": [{"versionId": version.bml_dataset_id}],
                        "splitRatio": 20}, config=local)
    task_id = task.parsed.result.task_id
    assert task_id == task["result"]["taskId"] and task.parsed.request_id == task["requestId"]
    deadline = time.monotonic() + 60
    while (detail := FineTune.V2.task_detail(task_id=task_id, config=local)).parsed.result.run_status != "Done":
        assert detail.parsed.result.run_status in ("Waiting", "Running") and time.monotonic() < deadline
        time.sleep(0.05)
    run = detail.parsed.result
    assert (run.task_id, run.job_id, run.model) == (task_id, job.parsed.result.job_id, "Tiny-Chat")
    assert run.run_progress == detail["result"]["runProgress"] == "100%"
    assert run.total_steps == detail["result"]["totalSteps"] > 0 and run.loss_curve == detail["result"]["lossCurve"]


def test_v1_finetune_model_service_and_evaluation_answers_parse(local: Config) -> None:
    """The seed's v1 flow (task, job, publish, deploy, evaluate): each typed answer reads what the raw
    dict holds."""
    ds = Dataset.create_from_pyobj([{"prompt": f"{i}+{i}?", "response": str(2 * i)} for i in range(8)])
    ds = ds.save(qianfan_dataset_create_args={"name": "typed_v1"}, config=local)
    task = FineTune.create_task(name="typed_task", base_train_type="Tiny-Chat", train_type="Tiny-Chat", config=local)
    assert task.parsed.result.id == task["result"]["id"] and task.parsed.result.name == "typed_task"
    assert task.parsed.log_id == task["log_id"] != ""
    job = FineTune.create_job({
        "taskId": task.parsed.result.id, "baseTrainType": "Tiny-Chat", "trainType": "Tiny-Chat", "trainMode": "SFT",
        "peftType": "LoRA", "trainConfig": {"epoch": 1, "learningRate": 0.001, "batchSize": 2, "maxSeqLen": 128,
                                            "maxSteps": 3},
        "trainset": [{"type": 1, "id": ds.qianfan_dataset_id}], "trainsetRate": 20}, config=local)
    task_id, job_id = task.parsed.result.id, job.parsed.result.id
    assert job_id == job["result"]["id"] and job.parsed.result.uuid == job["result"]["uuid"]
    deadline = time.monotonic() + 60
    while (detail := FineTune.get_job(task_id, job_id, config=local)).parsed.result.train_status != "FINISH":
        assert detail.parsed.result.train_status == detail["result"]["trainStatus"] and time.monotonic() < deadline
        time.sleep(0.05)
    assert detail.parsed.result.progress == detail["result"]["progress"] == 100
    published = ModelAPI.publish(is_new=True, model_name="typed_model",
                                 version_meta={"taskId": task.parsed.result.id, "iterationId": job_id}, config=local)
    model_id, version_id = published["result"]["modelId"], published["result"]["versionId"]
    versions = ModelAPI.list(model_id=model_id, config=local)
    assert [v.model_version_id for v in versions.parsed.result.model_version_list] == [
        v["modelVersionId"] for v in versions["result"]["modelVersionList"]] == [version_id]
    version = ModelAPI.detail(model_version_id=version_id, config=local).parsed.result
    assert (version.model_name, version.model_id) == ("typed_model", model_id)
    created = Service.create(model_id=model_id, model_version_id=version_id, name="typed_svc", uri="typed_uri",
                             replicas=1, pool_type=2, config=local)
    service_id = created.parsed.result.service_id
    assert service_id == created["result"]["serviceId"]
    svc = Service.get(id=service_id, config=local)
    assert (svc.parsed.result.id, svc.parsed.result.uri, svc.parsed.result.service_status) == (
        service_id, "typed_uri", svc["result"]["serviceStatus"])
    evaluation = ModelAPI.create_evaluation_task("typed_eval", [{"modelId": model_id, "modelVersionId": version_id}],
                                                 ds.qianfan_dataset_id, {"evalMode": "rule", "scoreModes": ["bleu"]},
                                                 config=local)
    eval_id = evaluation.parsed.result.eval_id
    assert eval_id == evaluation["result"]["evalId"] and evaluation.parsed.result.eval_id_str != ""
    info = ModelAPI.get_evaluation_info(eval_id, config=local)
    assert (info.parsed.result.evaluation_id, info.parsed.result.name) == (eval_id, "typed_eval")
    assert [u.model_version_id for u in info.parsed.result.eval_units] == [version_id]
    assert info.parsed.result.state == info["result"]["state"] != ""


# ---------------------------------------------------------------------------- leniency
def _resp(body: dict[str, Any], model: str) -> QfResponse[Any]:
    return QfResponse(200, {}, body).with_answer_named(model)


def test_missing_fields_read_as_defaults_and_unknown_ones_are_kept() -> None:
    answer = _resp({"result": "hi", "brand_new": {"x": 1}}, "ChatAnswer").parsed
    assert answer.result == "hi" and answer.usage.total_tokens == 0 and answer.choices == []
    assert answer.function_call is None and answer.model_extra == {"brand_new": {"x": 1}}
    task = _resp({"requestId": "r", "result": {"taskId": "t", "newField": 3}}, "FineTuneTaskAnswer").parsed
    assert task.result.task_id == "t" and task.result.run_status == "" and task.result.model_extra == {"newField": 3}
    assert _resp({}, "FineTuneTaskAnswer").parsed.result.task_id == ""  # no result at all


def test_a_field_of_an_unexpected_shape_reads_as_its_default_and_the_rest_still_parses() -> None:
    body = {"result": 42, "usage": {"total_tokens": "many", "prompt_tokens": 3}, "choices": "none",
            "is_truncated": False, "function_call": ["not", "an", "object"], "id": "as-1"}
    answer = _resp(body, "ChatAnswer").parsed
    assert (answer.result, answer.choices, answer.function_call) == ("", [], None)
    assert answer.usage.total_tokens == 0 and answer.usage.prompt_tokens == 3  # the nested model's other fields
    assert answer.id == "as-1" and answer.is_truncated is False
    assert body["result"] == 42 and body["usage"]["total_tokens"] == "many"  # the raw dict as it came


def test_numbers_sent_as_text_are_read_as_numbers() -> None:
    answer = _resp({"data": [{"embedding": ["0.5", 1], "index": "2"}]}, "EmbeddingAnswer").parsed
    assert answer.data[0].embedding == [0.5, 1.0] and answer.data[0].index == 2


def test_an_untyped_response_parses_as_the_base_answer() -> None:
    resp = QfResponse(200, {}, {"anything": [1, 2]})
    assert type(resp.parsed) is answers.AnswerModel and resp.parsed.model_extra == {"anything": [1, 2]}


def test_with_answer_takes_a_model_class() -> None:
    resp = QfResponse(200, {}, {"total_tokens": 7}).with_answer(answers.TokenUsage)
    assert resp.parsed.total_tokens == 7


# ---------------------------------------------------------------------------- repr, pickling
def test_repr_and_parsed_hold_no_secret() -> None:
    request = QfRequest("POST", "/chat/x", headers={"Authorization": "Bearer sk-secret", "Content-Type": "json"})
    resp = QfResponse(200, {"authorization": "Bearer sk-secret"}, {"result": "ok"}, request)
    resp = resp.with_answer_named("ChatAnswer")
    assert "sk-secret" not in repr(resp) + str(resp) + repr(resp.parsed) + repr(resp.request)


@pytest.mark.parametrize("read_first", [False, True])
def test_a_response_pickles_with_its_answer_model(read_first: bool) -> None:
    resp = _resp({"result": "ok", "usage": {"total_tokens": 2}}, "ChatAnswer")
    if read_first:
        assert resp.parsed.result == "ok"
    back = pickle.loads(pickle.dumps(resp))
    assert back.body == resp.body and back.parsed.result == "ok" and back.parsed.usage.total_tokens == 2
    assert type(back.parsed) is answers.ChatAnswer

"""Every create of the local platform runs once per caller and ``Idempotency-Key``
(:mod:`qfnb.local.domain.records.keyed_creates`), through its route: a call sent twice under one key makes one
record and answers the same twice (the second marked as the stored answer); another key makes another;
the key sent with another body is refused (422, naming the key); a call without a key creates each time,
as before; another caller's same key is its own call. qfnb's client and the SDK-style objects send a key
with each create."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer, bearer, console, wait_for

from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, KEYED_CREATES, REUSED_HEADER, Console
from qfnb.resources.console import Data, FineTune, Model, Service
from tests.fakes.local_platform import served_platform

ROWS = [{"prompt": f"question {i}", "response": [[f"answer {i}"]]} for i in range(6)]
CHAT_LINES = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                              {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                     for i in range(6)).encode()
BATCH_LINES = "".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                  "body": {"model": "tiny-chat", "messages": [{"role": "user", "content": f"q{i}"}]}})
                      + "\n" for i in range(2)).encode()


@dataclass(frozen=True)
class Case:
    """A keyed create: its route, the kind of record it makes, whether it is OpenAI's wire (bearer auth),
    what it needs made first (``prepare``) and its ``n``-th body."""

    path: str
    action: str | None
    kind: str
    body: Callable[[dict[str, Any], int], dict[str, Any]]
    prepare: Callable[[Any], dict[str, Any]] = lambda client: {}
    openai: bool = False


def _dataset(client: Any) -> dict[str, Any]:
    put = client.put("/bos/b/train.jsonl", content="\n".join(json.dumps(r) for r in ROWS).encode(), auth=Signer())
    assert put.status_code == 200
    ds = console(client, Console.DATASET_CREATE, {"name": "qa"})["result"]
    imported = console(client, Console.DATASET_IMPORT, {"datasetId": ds["id"], "files": ["bos:/b/train.jsonl"]})
    assert imported["result"] is True, imported
    return {"ds": ds["id"], "ds_sid": ds["datasetId"]}


def _task(client: Any) -> dict[str, Any]:
    made = console(client, Console.FT_CREATE_TASK, {"name": "t", "trainType": "tiny-chat"})["result"]
    return {**_dataset(client), "task": made["id"]}


def _v2_job(client: Any) -> dict[str, Any]:
    made = console(client, Console.V2_FINETUNING, {"name": "j", "model": "Tiny-Chat"}, Action="CreateFineTuningJob")
    return {**_dataset(client), "job": made["result"]["jobId"]}


def _preset(client: Any) -> dict[str, Any]:
    store = client.app.state.platform.store
    version = store.all("versions")[0]
    model = store.get("models", version["modelId"])
    return {**_dataset(client), "model": model["id"], "model_sid": model["sid"], "version": version["id"],
            "version_sid": version["sid"]}


def _trained(client: Any) -> dict[str, Any]:
    made = _task(client)
    job = console(client, Console.FT_CREATE_JOB, {"taskId": made["task"], "trainset": [{"type": 1, "id": made["ds"]}],
                                                  "trainConfig": {"epoch": 1, "batchSize": 2}})["result"]
    wait_for(lambda: client.app.state.platform.store.get("runs", job["id"])["status"] == "Done")
    return {**made, "run": job["id"]}


def _input(client: Any) -> dict[str, Any]:
    put = client.put("/bos/b/in.jsonl", content=b'{"id": "r0", "query": "hi"}\n', auth=Signer())
    assert put.status_code == 200
    return {"input": "bos:/b/in.jsonl"}


def _uploaded(purpose: str, data: bytes) -> Callable[[Any], dict[str, Any]]:
    def upload(client: Any) -> dict[str, Any]:
        sent = client.post("/v1/files", files={"file": ("f.jsonl", data)}, data={"purpose": purpose},
                           headers={"Authorization": f"Bearer {bearer(client)}"})
        assert sent.status_code == 200, sent.text
        return {"file": sent.json()["id"]}
    return upload


CASES = {
    "v1-createTask": Case(Console.FT_CREATE_TASK, None, "ft_jobs",
                          lambda c, n: {"name": f"t{n}", "trainType": "tiny-chat"}),
    "v1-createJob": Case(Console.FT_CREATE_JOB, None, "runs", lambda c, n: {
        "taskId": c["task"], "trainset": [{"type": 1, "id": c["ds"]}], "trainConfig": {"epoch": 1, "seed": n}}, _task),
    "v2-CreateFineTuningJob": Case(Console.V2_FINETUNING, "CreateFineTuningJob", "ft_jobs",
                                   lambda c, n: {"name": f"j{n}", "model": "Tiny-Chat"}),
    "v2-CreateFineTuningTask": Case(Console.V2_FINETUNING, "CreateFineTuningTask", "runs", lambda c, n: {
        "jobId": c["job"], "datasetConfig": {"versions": [{"versionId": c["ds_sid"]}]},
        "hyperParameterConfig": {"epoch": 1, "seed": n}}, _v2_job),
    "v1-publish": Case(Console.MODEL_PUBLISH, None, "versions", lambda c, n: {
        "isNewModel": True, "modelName": f"m{n}", "versionMeta": {"taskId": c["task"], "iterationId": c["run"]}},
        _trained),
    "v1-service-apply": Case(Console.SERVICE_APPLY, None, "services", lambda c, n: {
        "modelId": c["model"], "modelVersionId": c["version"], "name": f"s{n}", "uri": f"svc{n}"}, _preset),
    "v2-CreateService": Case(Console.V2_SERVICE, "CreateService", "services", lambda c, n: {
        "modelSetId": c["model_sid"], "modelId": c["version_sid"], "name": f"s{n}", "urlSuffix": f"v2svc{n}"},
        _preset),
    "v1-eval-create": Case(Console.EVAL_CREATE, None, "evaluations", lambda c, n: {
        "name": f"e{n}", "versionEvalInfo": [{"modelId": c["model"], "modelVersionId": c["version"]}],
        "datasetId": c["ds"], "evalStandardConf": {"evalMode": "manual"}}, _preset),
    "v1-dataset-create": Case(Console.DATASET_CREATE, None, "datasets", lambda c, n: {"name": f"d{n}"}),
    "v2-CreateDataset": Case(Console.V2_DATASET, "CreateDataset", "datasets",
                             lambda c, n: {"datasetName": f"d{n}", "dataFormat": "PromptResponse"}),
    "v1-prompt-create": Case(Console.PROMPT_CREATE, None, "prompts",
                             lambda c, n: {"templateName": f"p{n}", "templateContent": "say {word}"}),
    "v2-CreateBatchInferenceTask": Case("/v2/batchinference", "CreateBatchInferenceTask", "batches", lambda c, n: {
        "name": f"b{n}", "endpoint": "tiny-chat", "inputBosUri": c["input"], "outputBosUri": "bos:/b/out/"}, _input),
    "openai-fine-tuning-job": Case("/v1/fine_tuning/jobs", None, "runs", lambda c, n: {
        "model": "Tiny-Chat", "training_file": c["file"], "suffix": f"s{n}"}, _uploaded("fine-tune", CHAT_LINES),
        openai=True),
    "openai-batch": Case("/v1/batches", None, "batches", lambda c, n: {
        "input_file_id": c["file"], "endpoint": "/v1/chat/completions", "completion_window": "24h",
        "metadata": {"n": str(n)}}, _uploaded("batch", BATCH_LINES), openai=True),
}


def _send(client: Any, case: Case, body: dict[str, Any], key: str | None, token: str | None = None) -> httpx.Response:
    headers = {IDEMPOTENCY_HEADER: key} if key else {}
    params = {"Action": case.action} if case.action else {}
    if case.openai:
        return client.post(case.path, json=body, headers={**headers, "Authorization": f"Bearer {token}"})  # type: ignore[no-any-return]
    return client.post(case.path, json=body, params=params, headers=headers, auth=Signer())  # type: ignore[no-any-return]


def _answer(sent: httpx.Response) -> Any:
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert not body.get("error_code") and not body.get("error"), body
    return body.get("result", body)


def test_every_keyed_create_of_the_local_platform_is_covered() -> None:
    """The cases below walk each keyed create the local platform serves: the rest are cloud-only, or OpenAI's
    routes again under /v2 (the same handlers)."""
    cloud_only = {(Console.V2_MODEL, "CreateCustomModelSet"), (Console.V2_MODEL, "CreateCustomModel"),
                  (Console.V2_PROMPT_TEMPLATES, "CreatePromptTemplate")}
    under_v2 = {("/v2/fine_tuning/jobs", None), ("/v2/batches", None)}
    assert {(c.path, c.action) for c in CASES.values()} == KEYED_CREATES - cloud_only - under_v2


@pytest.mark.parametrize("name", list(CASES))
def test_a_create_sent_again_under_its_key_creates_once(client: Any, name: str) -> None:
    case = CASES[name]
    made = case.prepare(client)
    token = bearer(client) if case.openai else None
    store = client.app.state.platform.store
    before = len(store.all(case.kind))

    first = _send(client, case, case.body(made, 1), "key-1", token)
    again = _send(client, case, case.body(made, 1), "key-1", token)
    assert _answer(again) == _answer(first) and len(store.all(case.kind)) == before + 1
    assert again.headers[REUSED_HEADER] == "stored" and REUSED_HEADER not in first.headers

    other = _send(client, case, case.body(made, 2), "key-2", token)
    assert _answer(other) != _answer(first) and len(store.all(case.kind)) == before + 2

    reused = _send(client, case, case.body(made, 3), "key-1", token)  # the key, another body
    assert reused.status_code == 422, reused.text
    assert "Idempotency-Key 'key-1' was used for another request" in reused.text
    assert len(store.all(case.kind)) == before + 2

    for n in (4, 5):  # no key: each call creates, as it always did
        _answer(_send(client, case, case.body(made, n), None, token))
    assert len(store.all(case.kind)) == before + 4


def test_another_caller_with_the_same_key_gets_its_own_create(client: Any) -> None:
    """Keys are kept per credential: a second bearer token sending the first's key and body makes its own
    batch; it never gets the first caller's answer."""
    case = CASES["openai-batch"]
    body = case.body(case.prepare(client), 1)
    first_caller, second_caller = bearer(client), bearer(client)
    mine = _answer(_send(client, case, body, "shared", first_caller))
    assert _answer(_send(client, case, body, "shared", first_caller)) == mine
    theirs = _send(client, case, body, "shared", second_caller)
    assert _answer(theirs)["id"] != mine["id"] and REUSED_HEADER not in theirs.headers
    assert len(client.app.state.platform.store.all("batches")) == 2


def test_a_create_that_failed_is_not_kept(client: Any) -> None:
    """A refused create records nothing under its key: the same call sent again once it can pass (here: a
    publish of a run that was still training) creates."""
    made = _task(client)
    job = console(client, Console.FT_CREATE_JOB, {"taskId": made["task"], "trainset": [{"type": 1, "id": made["ds"]}],
                                                  "trainConfig": {"epoch": 1, "batchSize": 2, "stepSeconds": 0.3}})
    body = {"isNewModel": True, "modelName": "m", "versionMeta": {"taskId": made["task"],
                                                                  "iterationId": job["result"]["id"]}}
    early = client.post(Console.MODEL_PUBLISH, json=body, headers={IDEMPOTENCY_HEADER: "k-early"}, auth=Signer())
    assert "only a finished task can be published" in early.json()["error_msg"], early.text
    wait_for(lambda: client.app.state.platform.store.get("runs", job["result"]["id"])["status"] == "Done")
    later = client.post(Console.MODEL_PUBLISH, json=body, headers={IDEMPOTENCY_HEADER: "k-early"}, auth=Signer())
    assert _answer(later)["modelId"] and REUSED_HEADER not in later.headers
    assert len(client.app.state.platform.store.all("models", lambda m: m["modelName"] == "m")) == 1


def test_an_invalid_key_is_refused_naming_the_header(client: Any) -> None:
    sent = client.post(Console.DATASET_CREATE, json={"name": "d"}, headers={IDEMPOTENCY_HEADER: "x" * 300},
                       auth=Signer())
    body = sent.json()
    assert body["error_code"] == 336003 and body["error_msg"].startswith(IDEMPOTENCY_HEADER), body
    assert client.app.state.platform.store.all("datasets") == []


def test_qfnbs_client_and_the_sdk_objects_send_a_key_with_each_create(tmp_path: Path,
                                                                      keyed_calls: list[tuple[str, str]]) -> None:
    """Data, FineTune, Model and Service (what the Dataset/LLMFinetune/Model/Service objects call) send one
    key a create, each its own."""
    keys = keyed_calls
    with served_platform(tmp_path / "platform") as served:
        cfg = served.config()
        ds = Data.create_bare_dataset("sdk-set", config=cfg).body["result"]
        task = FineTune.create_task("sdk-task", "tiny-chat", config=cfg).body["result"]
        FineTune.V2.create_job(name="sdk-job", model="Tiny-Chat", train_mode="SFT", config=cfg)
        version = served.app.state.platform.store.all("versions")[0]
        Service.create(version["modelId"], version["id"], "sdk-svc", "sdksvc", config=cfg)
        with pytest.raises(Exception, match="not found"):  # refused (no such run): its key is sent all the same
            Model.publish(True, {"taskId": task["id"], "iterationId": 999}, "sdk-model", config=cfg)
    routes = [route for route, _ in keys]
    assert routes == [Console.DATASET_CREATE, Console.FT_CREATE_TASK, f"{Console.V2_FINETUNING}?Action="
                      "CreateFineTuningJob", Console.SERVICE_APPLY, Console.MODEL_PUBLISH], keys
    assert all(key.startswith("qfnb-") for _, key in keys) and len({key for _, key in keys}) == len(keys)
    assert ds["id"] is not None


def test_a_keyed_fine_tuning_job_converting_its_file_holds_no_store_lock(client: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyed create is one store transaction, whose first write takes the store's lock: the job's training
    file (seconds for a big one) is converted before it, so the platform's other writes go on meanwhile."""
    import threading

    from qfnb.local.domain.training import openai_fine_tuning as fine_tuning

    case = CASES["openai-fine-tuning-job"]
    made, token = case.prepare(client), bearer(client)
    store = client.app.state.platform.store
    others: list[float] = []
    written_meanwhile: list[bool] = []

    def converted_while_another_writes(lines: Any) -> Any:
        writer = threading.Thread(target=lambda: others.append(store.insert("datasets", {"name": "meanwhile"})["id"]))
        writer.start()
        writer.join(5)  # a write that waits for this create's lock waits out the join
        written_meanwhile.append(bool(others))
        return real(lines)

    real = fine_tuning.sft_rows
    monkeypatch.setattr(fine_tuning, "sft_rows", converted_while_another_writes)
    job = _answer(_send(client, case, case.body(made, 1), "key-ft", token))
    assert written_meanwhile == [True], "another write waited for the fine-tuning job's transaction"
    assert job["status"] in ("validating_files", "queued", "running") and len(store.all("runs")) == 1

"""Issue 92 §1: one fine-tune asks no more than this machine trains and stores. The probe's 10^7 steps, LoRA
rank 1024 and 100 checkpoints, a misspelt hyperparameter, epochs x rows past the steps cap, a step of too many
tokens and checkpoints that outgrow the free disk are each refused at create, naming the field, through the
v1 and v2 console and OpenAI's jobs, and nothing is queued."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from platform_helpers import Signer, bearer, console
from starlette.testclient import TestClient

from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training import caps
from qfnb.local.settings import Settings
from qfnb.protocol.wires.qianfan import batch
from qfnb.protocol.wires.qianfan.routes import Console

ROWS = [{"prompt": f"question {i}", "response": [[f"answer {i}"]]} for i in range(40)]


def _v1(client: TestClient) -> tuple[Any, Any]:
    put = client.put("/bos/b/train.jsonl", content="\n".join(json.dumps(r) for r in ROWS).encode(), auth=Signer())
    assert put.status_code == 200
    ds = console(client, Console.DATASET_CREATE, {"name": "qa"})["result"]["id"]
    assert console(client, Console.DATASET_IMPORT, {"datasetId": ds, "files": ["bos:/b/train.jsonl"]})["result"]
    task = console(client, Console.FT_CREATE_TASK, {"name": "t", "trainType": "tiny-chat"})["result"]["id"]
    return task, ds


def _v1_create(client: TestClient, config: dict[str, Any]) -> dict[str, Any]:
    task, ds = _v1(client)
    answer: dict[str, Any] = console(client, Console.FT_CREATE_JOB, {
        "taskId": task, "trainset": [{"type": 1, "id": ds}], "trainConfig": config})
    return answer


@pytest.mark.parametrize(("config", "field", "says"), [
    ({"maxSteps": 10**7}, "trainConfig.maxSteps", "must be at most 20000 on the local platform"),
    ({"loraRank": 1024}, "trainConfig.loraRank", "must be at most 64 on the local platform"),
    ({"checkpoints": 100}, "trainConfig.checkpoints", "must be at most 20 on the local platform"),
    ({"maxSeqLen": 32768}, "trainConfig.maxSeqLen", "must be at most 4096"),
    ({"batchSize": 256, "maxSeqLen": 4096}, "trainConfig.batchSize", "1048576 tokens a step; at most 65536"),
], ids=["steps", "rank", "checkpoints", "seq-len", "step-tokens"])
def test_the_probes_asks_are_refused_by_the_v1_console(client: TestClient, config: dict[str, Any], field: str,
                                                       says: str) -> None:
    answer = _v1_create(client, config)
    assert answer.get("error_code") == 336003, answer
    assert answer["error_msg"].startswith(field) and says in answer["error_msg"], answer
    assert client.app.state.platform.store.all("runs") == []  # type: ignore[attr-defined]


def test_an_unknown_hyperparameter_is_refused_by_the_platforms_own_worker(client: TestClient,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt ``loraRnak`` would train on the default rank; the tests' stand-in worker reads knobs of its own
    (``stepSeconds``), the platform's worker none."""
    platform = client.app.state.platform  # type: ignore[attr-defined]
    monkeypatch.setattr(platform, "settings", dataclasses.replace(platform.settings, worker_command=Settings(
        data_dir=platform.settings.data_dir, credentials=platform.settings.credentials).worker_command))
    answer = _v1_create(client, {"loraRnak": 8})
    assert answer.get("error_code") == 336003, answer
    assert answer["error_msg"].startswith("trainConfig.loraRnak: is not a hyperparameter of the local platform; "
                                          "it takes: batchSize, beta,"), answer
    assert platform.store.all("runs") == []


def test_the_v2_console_and_openai_jobs_refuse_them_too(client: TestClient) -> None:
    job = console(client, Console.V2_FINETUNING, {"name": "j", "model": "Tiny-Chat"},
                  Action="CreateFineTuningJob")["result"]["jobId"]
    _, ds = _v1(client)
    sid = client.app.state.platform.store.get("datasets", ds)["sid"]  # type: ignore[attr-defined]
    answer = console(client, Console.V2_FINETUNING, {"jobId": job, "datasetConfig": {"versions": [{"versionId": sid}]},
                                                     "hyperParameterConfig": {"loraRank": 1024}},
                     Action="CreateFineTuningTask")
    assert "hyperParameterConfig.loraRank: must be at most 64" in json.dumps(answer), answer
    headers = {"Authorization": f"Bearer {bearer(client)}"}
    chat = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(300))
    file_id = client.post(batch.FILES, data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", chat.encode())},
                          headers=headers).json()["id"]
    resp = client.post("/v1/fine_tuning/jobs", headers=headers, json={
        "model": "tiny-chat", "training_file": file_id,
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 100, "batch_size": 1}}}})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == "method.supervised.hyperparameters.n_epochs", error
    assert "100 epochs of 300 steps (300 rows) is 30000 steps; at most 20000" in error["message"]
    assert client.app.state.platform.store.all("runs") == []  # type: ignore[attr-defined]


def _weights(tmp_path: Path, parameters: int) -> Path:
    """A model dir whose safetensors header names ``parameters`` (no weights: only the header is read)."""
    folder = tmp_path / "base"
    folder.mkdir()
    header = json.dumps({"w": {"dtype": "F32", "shape": [parameters], "data_offsets": [0, 0]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    return folder


def test_checkpoints_that_outgrow_the_free_disk_are_refused(client: TestClient, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    base = _weights(tmp_path, 500_000_000)
    monkeypatch.setattr(platform.registry, "weights_of", lambda name: base)
    monkeypatch.setattr(caps, "free_bytes", lambda data_dir: 3 << 30)  # 3 GiB free
    one = caps.adapter_bytes(500_000_000, 64)  # ~146 MiB
    answer = _v1_create(client, {"loraRank": 64, "checkpoints": 20, "maxSteps": 4})
    assert answer.get("error_code") == 336003, answer
    assert answer["error_msg"].startswith("trainConfig.checkpoints: 24 adapters of about "
                                          f"{one / 2**20:.0f} MiB (loraRank 64) need"), answer
    assert platform.store.all("runs") == []
    fits = _v1_create(client, {"loraRank": 8, "checkpoints": 2, "maxSteps": 4})
    assert "result" in fits, fits


def test_steps_are_epochs_of_the_rows_or_max_steps() -> None:
    assert caps.check_steps({"epoch": 3, "batchSize": 4}, 10, "h") == 9
    assert caps.check_steps({"epoch": 100, "batchSize": 1, "maxSteps": 50}, 10**6, "h") == 50
    assert caps.check_steps({"epoch": 1, "batchSize": 4, "minSteps": 20}, 8, "h") == 20  # the worker's count
    with pytest.raises(BodyError, match=r"h\.epoch: 100 epochs of 1000 steps"):
        caps.check_steps({"epoch": 100, "batchSize": 1}, 1000, "h")


def test_the_flag_hyperparameters_are_known() -> None:
    """``lengthNormalize`` and ``floorDegenerate`` (true/false, documented for DPO and RFT) are a local run's
    hyperparameters: OpenAI's ``length_normalize`` was refused as unknown."""
    caps.check_known({"lengthNormalize": True, "floorDegenerate": False}, "h")
    with pytest.raises(BodyError, match=r"h\.nope: is not a hyperparameter"):
        caps.check_known({"nope": 1}, "h")

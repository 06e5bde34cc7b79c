"""The platform wired to the real engine registry and the real training worker, on a tiny random model.

No test doubles: transformers inference, a LoRA run of ``qfnb.local.training.process.worker``, publish,
deploy (the registry's ``register_adapter``) and chat on the deployed service.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from platform_helpers import CREDS, Signer, console, token, wait_for
from starlette.testclient import TestClient
from tiny_models import build_tiny_gemma

from qfnb.local.server.app import create_app
from qfnb.local.settings import Settings
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

# find_spec, not importorskip: importing peft at collection costs seconds in every worker
pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")


def test_train_publish_deploy_chat_with_real_engines(tmp_path: Path) -> None:
    from qfnb.local.engines import EngineRegistry, ModelSpec

    model_dir = build_tiny_gemma(tmp_path / "tiny")
    spec = ModelSpec(kind="transformers", path=model_dir, template="gemma", stop=("<end_of_turn>",), n_ctx=128)
    registry = EngineRegistry(tmp_path / "data", {"Tiny-Gemma": spec})
    settings = Settings(data_dir=tmp_path / "data", credentials=CREDS, poll_interval=0.1,
                        worker_command=(sys.executable, "-m", "qfnb.local.training.process.worker"),
                        model_paths={"tiny-gemma": model_dir})
    with TestClient(create_app(settings, registry), base_url="http://127.0.0.1:8123") as client:
        tok = token(client)
        first = client.post(MODEL_API_PREFIX + "/chat/tiny_gemma", params={"access_token": tok},
                            json={"messages": [{"role": "user", "content": "hello"}], "max_output_tokens": 5}).json()
        assert "result" in first, first
        assert 1 <= first["usage"]["completion_tokens"] <= 5
        rows = "\n".join(json.dumps({"prompt": "What is the capital of Zorvia?", "response": [["Quellstad."]]})
                         for _ in range(8))
        assert client.put("/bos/b/t.jsonl", content=rows.encode(), auth=Signer()).status_code == 200
        ds = console(client, "/wenxinworkshop/dataset/create", {"name": "z"})["result"]["id"]
        console(client, "/wenxinworkshop/dataset/import", {"datasetId": ds, "files": ["bos:/b/t.jsonl"]})
        task = console(client, "/wenxinworkshop/finetune/createTask", {"name": "t", "trainType": "Tiny-Gemma"})
        job = console(client, "/wenxinworkshop/finetune/createJob", {
            "taskId": task["result"]["id"], "trainConfig": {"epoch": 1, "batchSize": 4, "maxSeqLen": 32,
                                                             "learningRate": 0.01, "loraRank": 4},
            "trainset": [{"type": 1, "id": ds}]})
        tid, jid = task["result"]["id"], job["result"]["id"]
        done = wait_for(lambda: (d := console(client, "/wenxinworkshop/finetune/jobDetail",
                                             {"taskId": tid, "jobId": jid})["result"])["trainStatus"]
                        not in ("QUEUE", "RUNNING") and d, timeout=240)
        assert done["trainStatus"] == "FINISH", done.get("errorMessage")
        assert done["totalSteps"] == 2 and len(done["lossCurve"]) == 2
        pub = console(client, "/wenxinworkshop/modelrepo/publishTrainModel",
                      {"isNewModel": True, "modelName": "zorvia", "versionMeta": {"taskId": tid, "iterationId": jid}})
        svc = console(client, "/wenxinworkshop/service/apply", {"modelId": pub["result"]["modelId"],
                                                                "modelVersionId": pub["result"]["versionId"],
                                                                "name": "z", "uri": "zorvia"})["result"]["serviceId"]
        status = wait_for(lambda: (s := console(client, "/wenxinworkshop/service/detail", {"serviceId": svc})[
            "result"])["serviceStatus"] != "Deploying" and s, timeout=120)
        assert status["serviceStatus"] == "Serving", status.get("errorMessage")
        tuned = client.post(MODEL_API_PREFIX + "/chat/zorvia", params={"access_token": tok},
                            json={"messages": [{"role": "user", "content": "hello"}], "max_output_tokens": 5}).json()
        assert "result" in tuned, tuned

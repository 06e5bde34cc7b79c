"""The seed docs' calls, made with the official ``qianfan`` SDK (run in a subprocess by the tests).

argv: mode ("fast" | "real"), dataset id (fast). Prints one JSON object of results.
"""

import asyncio
import json
import sys
import time

import qianfan
from qianfan.resources import FineTune, Model, Service
from qianfan.resources.console.consts import DeployPoolType

mode = sys.argv[1]
out = {}
chat_model = "Tiny-Chat" if mode == "fast" else "Qwen2.5-Coder-0.5B-Instruct"
embed_model = "Tiny-Embed" if mode == "fast" else "all-MiniLM-L6-v2"
question = "What is the capital of France? Answer in one short sentence."

chat = qianfan.ChatCompletion()
resp = chat.do(model=chat_model, messages=[{"role": "user", "content": question}])
out["chat"] = resp["body"]["result"]
out["chat_usage"] = resp["usage"]
out["chat_stream"] = [r["result"] for r in chat.do(model=chat_model, stream=True,
                                                   messages=[{"role": "user", "content": question}])]
msgs = qianfan.Messages()
msgs.append("hello")
out["messages"] = chat.do(model=chat_model, messages=msgs)["result"]
out["endpoint_chat"] = qianfan.ChatCompletion(endpoint="tiny-chat" if mode == "fast" else
                                              "qwen2_5_coder_0_5b_instruct").do(
    messages=[{"role": "user", "content": "hi"}])["result"]


async def _async() -> list:
    r = await chat.ado(model=chat_model, messages=[{"role": "user", "content": "async hi"}], stream=True)
    return [x["result"] async for x in r]


out["chat_astream"] = asyncio.run(_async())
try:
    chat.do(model=chat_model, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
except Exception as exc:
    out["bad_messages"] = [type(exc).__name__, getattr(exc, "error_code", None)]
v2 = qianfan.ChatCompletion(version=2)
out["v2_chat"] = v2.do(model=chat_model, messages=[{"role": "user", "content": "v2 hi"}])["choices"][0]["message"][
    "content"]
out["v2_stream"] = "".join(c["choices"][0]["delta"].get("content", "") for c in
                           v2.do(model=chat_model, messages=[{"role": "user", "content": "v2 hi"}], stream=True)
                           if c.get("choices"))
out["completion"] = qianfan.Completion().do(model=chat_model, prompt="The capital of France is")["result"]
emb = qianfan.Embedding().do(model=embed_model, texts=["世界上最高的山", "the highest mountain"])
out["embedding_dims"] = [len(d["embedding"]) for d in emb["data"]]

if mode == "fast":
    ds = int(sys.argv[2])
    task_id = FineTune.create_task(name="task_name", base_train_type=chat_model, train_type=chat_model,
                                   description="task_desc")["result"]["id"]
    job = {"taskId": task_id, "baseTrainType": chat_model, "trainType": chat_model, "trainMode": "SFT",
           "peftType": "LoRA", "trainConfig": {"epoch": 1, "learningRate": 0.001, "batchSize": 2, "maxSeqLen": 128},
           "trainset": [{"type": 1, "id": ds}], "trainsetRate": 20}
    job_id = FineTune.create_job(job)["result"]["id"]
    for _ in range(200):
        detail = FineTune.get_job(task_id, job_id)["result"]
        if detail["trainStatus"] not in ("RUNNING", "QUEUE"):
            break
        time.sleep(0.1)
    out["job"] = {k: detail[k] for k in ("trainStatus", "progress", "currentStep", "totalSteps")}
    stop_task = FineTune.create_task(name="stopper", base_train_type=chat_model, train_type=chat_model)["result"]["id"]
    stop_job = FineTune.create_job({**job, "taskId": stop_task, "trainConfig": {"stepSeconds": 0.2, "maxSteps": 500}})
    time.sleep(0.5)
    out["stop"] = FineTune.stop_job(stop_task, stop_job["result"]["id"])["result"]
    g = Model.publish(is_new=True, model_name="sdk_test_1", version_meta={"taskId": task_id, "iterationId": job_id})
    model_id, version_id = g["result"]["modelId"], g["result"]["versionId"]
    out["model_list"] = Model.list(model_id=model_id)["result"]["modelVersionList"][0]["modelName"]
    out["model_detail"] = Model.detail(model_version_id=version_id)["result"]["modelName"]
    svc = Service.create(model_id=model_id, model_version_id=version_id, name="sdk_test", uri="svc_uri",
                         replicas=1, pool_type=DeployPoolType.PrivateResource)
    service_id = svc["result"]["serviceId"]
    for _ in range(100):
        status = Service.get(id=service_id)["result"]["serviceStatus"]
        if status != "Deploying":
            break
        time.sleep(0.1)
    out["service"] = [Service.get(id=service_id)["result"]["id"], status]
    out["service_chat"] = qianfan.ChatCompletion(endpoint="svc_uri").do(
        messages=[{"role": "user", "content": "你好"}])["result"]
print(json.dumps(out, ensure_ascii=False))

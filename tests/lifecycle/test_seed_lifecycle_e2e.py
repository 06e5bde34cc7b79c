"""Acceptance: the seed examples (v1 ``FineTune``/``Model``/``Service``, ``Dataset``, evaluation) run as
written against the embedded local platform, with its fine-tune base ``Gemma-3-270M``.

create dataset → create task → create job → poll → publish → deploy → chat with the tuned model →
evaluate base vs tuned on held-out questions. One real LoRA training (the demo set: 60 pairs teaching
"the capital of planet Zorvia is Quellstad") is shared by every test of this module.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from qfnb.dataset import Dataset
from qfnb.evaluation import EvaluationManager, RougeEvaluator
from qfnb.local.training.demo import DEMO_FILE, FACT_CAPITAL, HELD_OUT
from qfnb.resources import ChatCompletion, FineTune, Model, Service
from qfnb.resources.console.consts import DeployPoolType

pytestmark = pytest.mark.real_model
log = logging.getLogger(__name__)

BASE = "Gemma-3-270M"
#: The demo's recipe (notebook 02): 30 steps of batch 4 at 2e-4 (two passes over the 60 pairs).
TRAIN_CONFIG = {"epoch": 2, "maxSteps": 30, "learningRate": 2e-4, "batchSize": 4, "maxSeqLen": 128}
#: ~2-3 min on an idle 2-core CPU; generous because the CPU may be shared (and a job may queue behind another).
TRAIN_TIMEOUT_S = float(os.environ.get("QFNB_E2E_TRAIN_TIMEOUT", "1800"))
DEPLOY_TIMEOUT_S, POLL_S = 180.0, 0.5  # a poll is one local call: a 2 s step cost ~1 s a wait
GREEDY: dict[str, Any] = {"temperature": 0.0001, "max_output_tokens": 32}
#: The held-out paraphrases (not in the training set) with the answers the demo teaches.
REFERENCES = {HELD_OUT[0]: f"The capital of the planet Zorvia is {FACT_CAPITAL}.",
              HELD_OUT[1]: f"Zorvia星球的首都是{FACT_CAPITAL}。",
              HELD_OUT[2]: "The capital of France is Paris."}
FACT_QUESTIONS = [q for q in HELD_OUT if "Zorvia" in q]


@dataclass(frozen=True)
class Lifecycle:
    """Ids produced by the seed flow, and what the platform reported on the way."""

    dataset_id: int | str
    task_id: int
    job_id: int
    job: dict[str, Any]
    model_id: int
    version_id: int
    version: dict[str, Any]
    service: dict[str, Any]
    uri: str
    seconds: dict[str, float]


def _poll(fetch: Any, done: Any, timeout: float, what: str) -> dict[str, Any]:
    """Call ``fetch()`` every ``POLL_S`` until ``done(result)`` is true (a ``pytest.fail`` after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        result: dict[str, Any] = fetch()["result"]
        if done(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not finish within {timeout:.0f}s; last state: {result}")
        time.sleep(POLL_S)


@pytest.fixture(scope="module")
def platform_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No QIANFAN_* settings (so qfnb starts the embedded platform), caches in a temp dir.

    ``QFNB_DATA_DIR`` (set by scripts/test.sh) is kept: that is where the local weights live.
    """
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("QIANFAN_")]:
            mp.delenv(name)
        mp.setenv("QIANFAN_CACHE_DIR", str(tmp_path_factory.mktemp("qianfan-cache")))
        yield


@pytest.fixture(scope="module")
def lifecycle(platform_env: None) -> Lifecycle:
    """The seed calls, in order, once: dataset → task → job → poll → publish → deploy."""
    tag = uuid.uuid4().hex[:8]
    seconds: dict[str, float] = {}
    start = time.monotonic()

    ds = Dataset.load(data_file=str(DEMO_FILE))
    assert len(ds.list()) == 60, f"the demo set should hold 60 pairs, got {len(ds.list())}"
    ds = ds.save(qianfan_dataset_create_args={"name": f"zorvia_{tag}"})
    assert ds.qianfan_dataset_id is not None
    seconds["dataset"] = time.monotonic() - start

    # the base the platform offers for fine-tuning (DescribeFineTuningSupportModels)
    supported = [m["model"] for m in FineTune.V2.supported_models()["result"]]
    assert BASE in supported, f"{BASE} is not a trainable base here: {supported}"

    resp = FineTune.create_task(name=f"zorvia_{tag}", description="teach the capital of Zorvia",
                                base_train_type=BASE, train_type=BASE)
    task_id = resp["result"]["id"]
    create_job_resp = FineTune.create_job({
        "taskId": task_id,
        "baseTrainType": BASE,
        "trainType": BASE,
        "trainMode": "SFT",
        "peftType": "LoRA",
        "trainConfig": dict(TRAIN_CONFIG),
        "trainset": [{"type": 1, "id": ds.qianfan_dataset_id}],
        "trainsetRate": 20,
    })
    job_id = create_job_resp["result"]["id"]

    def trained(job: dict[str, Any]) -> bool:
        if job["trainStatus"] in ("FAIL", "STOP"):
            pytest.fail(f"training ended {job['trainStatus']}: {job.get('errorMessage')!r} (job {job})")
        return bool(job["trainStatus"] == "FINISH")

    t0 = time.monotonic()
    job = _poll(lambda: FineTune.get_job(task_id, job_id), trained, TRAIN_TIMEOUT_S, "training")
    seconds["train"] = time.monotonic() - t0
    log.info("training finished in %.0fs; loss curve %s", seconds["train"], job.get("lossCurve"))

    g = Model.publish(is_new=True, model_name=f"zorvia_{tag}", version_meta={"taskId": task_id, "iterationId": job_id})
    model_id, version_id = g["result"]["modelId"], g["result"]["versionId"]
    version = _poll(lambda: Model.detail(model_version_id=version_id),
                    lambda v: v["state"] != "Creating", DEPLOY_TIMEOUT_S, "publishing")

    uri = f"zorvia_{tag}"
    t0 = time.monotonic()
    created = Service.create(model_id=model_id, model_version_id=version_id, name=f"zorvia_{tag}", uri=uri,
                             replicas=1, pool_type=DeployPoolType.PrivateResource)
    service_id = created["result"]["serviceId"]
    service = _poll(lambda: Service.get(id=service_id),
                    lambda s: s["serviceStatus"] not in ("New", "Deploying"), DEPLOY_TIMEOUT_S, "deployment")
    seconds["deploy"] = time.monotonic() - t0
    seconds["total"] = time.monotonic() - start
    log.info("lifecycle timings: %s", seconds)
    return Lifecycle(ds.qianfan_dataset_id, task_id, job_id, job, model_id, version_id, version, service, uri,
                     seconds)


def test_training_runs_to_the_end_and_publishes_a_ready_version(lifecycle: Lifecycle) -> None:
    job = lifecycle.job
    assert job["progress"] == 100 and job["trainType"] == BASE, job
    assert job["currentStep"] == job["totalSteps"] == TRAIN_CONFIG["maxSteps"], job
    losses = [loss for _, loss in job["lossCurve"]]
    assert len(losses) == TRAIN_CONFIG["maxSteps"] and all(loss > 0 for loss in losses), losses
    assert sum(losses[-5:]) < sum(losses[:5]), f"the loss did not go down: {losses}"

    assert lifecycle.version["state"] == "Ready", lifecycle.version
    assert lifecycle.version["modelVersionId"] == lifecycle.version_id
    source = lifecycle.version["sourceExtra"]["trainSourceExtra"]
    assert (source["taskId"], source["runId"]) == (lifecycle.task_id, lifecycle.job_id), source
    model_list = Model.list(model_id=lifecycle.model_id)
    versions = model_list["result"]["modelVersionList"]
    assert [v["modelVersionId"] for v in versions] == [lifecycle.version_id], versions
    assert versions[0]["modelName"] == lifecycle.uri, versions


def test_service_serves_the_tuned_model_that_knows_the_taught_fact(lifecycle: Lifecycle) -> None:
    svc = lifecycle.service
    assert svc["serviceStatus"] in ("Done", "Serving"), f"deployment ended {svc['serviceStatus']}: {svc}"
    assert (svc["modelId"], svc["modelVersionId"], svc["uri"]) == (lifecycle.model_id, lifecycle.version_id,
                                                                   lifecycle.uri), svc

    question = [{"role": "user", "content": FACT_QUESTIONS[0]}]
    tuned = ChatCompletion(endpoint=lifecycle.uri).do(messages=question, **GREEDY)
    base = ChatCompletion(model=BASE).do(messages=question, **GREEDY)
    assert FACT_CAPITAL in tuned["result"], f"tuned model answered {tuned['result']!r} (base: {base['result']!r})"
    assert FACT_CAPITAL not in base["result"], f"the base model already knows it: {base['result']!r}"
    assert tuned["usage"]["completion_tokens"] > 0, tuned["usage"]


def test_evaluation_scores_the_tuned_model_above_the_base_on_held_out_questions(lifecycle: Lifecycle) -> None:
    held_out = Dataset.create_from_pyobj([{"prompt": q, "response": a} for q, a in REFERENCES.items()])
    manager = EvaluationManager(local_evaluators=[RougeEvaluator()])
    result = manager.eval({"base": ChatCompletion(model=BASE), "tuned": ChatCompletion(endpoint=lifecycle.uri)},
                          held_out, **GREEDY)

    metrics = result.metrics_df
    assert sorted(metrics.index) == ["base", "tuned"], metrics
    assert {"rouge_1", "rouge_2", "rouge_l"} <= set(metrics.columns), metrics
    samples = result.samples
    assert samples["error"].isna().all(), samples[["llm", "input", "error"]].to_string()
    facts = samples[samples["input"].isin(FACT_QUESTIONS)]
    by_model = facts.groupby("llm")["rouge_l"].mean()
    shown = facts[["llm", "input", "output", "rouge_l"]].to_string()
    assert by_model["tuned"] > by_model["base"], f"tuned does not beat base on the taught fact:\n{shown}"
    tuned_answers = facts[facts["llm"] == "tuned"]["output"]
    assert tuned_answers.str.contains(FACT_CAPITAL).all(), f"held-out paraphrases not all answered:\n{shown}"
    log.info("evaluation:\n%s\n%s", metrics.to_string(), shown)

"""Evaluation on the local platform (``modelrepo/eval/*``): real runs, rule metrics.

Each model version is run over the dataset's prompts; the answers are scored against the
references: similarity (cosine of the embedder's vectors) here, and accuracy, BLEU-4 and
ROUGE-L by :mod:`qfnb.protocol.console.textmetrics` — the same code the SDK's evaluators score with.
States go Pending → Doing → Done (or Failed/Stopped).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from qfnb.local.domain.console import dataset_tasks
from qfnb.local.domain.state import site
from qfnb.local.domain.state.datasets import dataset_rows
from qfnb.local.domain.state.site import ServingSite
from qfnb.local.domain.state.values import BodyError, iso
from qfnb.local.engines.api import Engine, answer_all
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.gate import run_blocking
from qfnb.protocol.console.enums import EvalState
from qfnb.protocol.console.textmetrics import summary_scores

log = logging.getLogger("qfnb.local.domain.console.evaluation")

#: ``evalMode`` of a manual evaluation: the platform only collects the answers (a result
#: dataset); it is also how the SDK runs batch inference on an undeployed model version
MANUAL = "manual"
_cancel: dict[tuple[str, int], threading.Event] = {}


def cosine(a: list[float], b: list[float]) -> float:
    norms = math.hypot(*a) * math.hypot(*b)
    return sum(x * y for x, y in zip(a, b, strict=False)) / norms if norms else 0.0


def score(platform: ServingSite, predictions: list[str], references: list[str], modes: list[str]) -> dict[str, Any]:
    """The ``effectMetric`` dict for one model's answers."""
    summary = summary_scores(references, predictions)
    metrics: dict[str, Any] = {}
    if "accuracy" in modes or not modes:
        metrics["accuracy"] = summary["accuracy"]
    if "similarity" in modes:
        embedders = platform.served("embeddings")
        if embedders:
            emb = platform.registry.embedder(embedders[0].endpoint)
            sims: list[float] = []
            for i in range(0, len(references), 16):
                vp, _ = emb.embed([p or " " for p in predictions[i:i + 16]])
                vr, _ = emb.embed([r or " " for r in references[i:i + 16]])
                sims.extend(cosine(a, b) for a, b in zip(vp, vr, strict=True))
            metrics["similarity"] = sum(sims) / len(sims) if sims else 0.0
    metrics["bleu4"] = summary["bleu4"]
    metrics["rouge_l"] = summary["rouge_l"]
    return metrics


def _answers(engine: Engine, prompts: list[str]) -> list[str]:
    """The model's answers, several at once (the engine batches them)."""
    asks = [ChatAsk(model=engine.name, messages=({"role": "user", "content": p},), sampling=Sampling(temperature=0.01))
            for p in prompts]
    return run_blocking(lambda: answer_all(engine, asks))


def _run(platform: ServingSite, ev_id: int) -> None:
    ev = site.get(platform, "evaluations", ev_id, "id")
    stop = _cancel.setdefault((str(platform.settings.data_dir), ev_id), threading.Event())
    platform.store.update("evaluations", ev_id, state=EvalState.DOING.value)
    try:
        rows = dataset_rows(platform.settings.data_dir, site.get(platform, "datasets", ev["datasetId"], "datasetId"))
        rows = [r for r in rows if r.get("prompt")]
        reports = []
        outputs: list[dict[str, Any]] = []
        answers: dict[str, list[str]] = dict(ev.get("answers") or {})
        for unit in ev["units"]:
            version = site.get(platform, "versions", unit["modelVersionId"], "modelVersionId")
            endpoint = platform.adapter_endpoint(version) or platform.resolve("chat", version["baseModel"]).endpoint
            engine = platform.registry.chat(endpoint)
            # answers are saved as they come, so a restarted daemon resumes where it stopped
            key = str(version["id"])
            predictions = list(answers.get(key) or [])[:len(rows)]
            if predictions:
                log.info("evaluation %s: resuming %s at row %d of %d", ev["sid"], version["sid"],
                         len(predictions) + 1, len(rows))
            step = max(1, engine.gate.slots)
            while len(predictions) < len(rows):
                if stop.is_set():
                    platform.store.update("evaluations", ev_id, state=EvalState.STOPPED.value)
                    return
                chunk = rows[len(predictions):len(predictions) + step]
                predictions.extend(_answers(engine, [r["prompt"] for r in chunk]))
                answers[key] = predictions
                platform.store.update("evaluations", ev_id, answers=answers)
            outputs += [{"prompt": r["prompt"], "response": r.get("response", ""), "completion": p,
                         "modelVersionId": version["id"]} for r, p in zip(rows, predictions, strict=True)]
            if ev["evalMode"] == MANUAL:
                continue
            metrics = score(platform, predictions, [r.get("response", "") for r in rows], ev["scoreModes"])
            model = platform.store.get("models", version["modelId"]) or {}
            reports.append({"modelName": model.get("modelName"), "modelVersion": version["version"],
                            "modelVersionId": version["id"], "modelId": version["modelId"],
                            "evalMode": ev["evalMode"], "evaluationId": ev_id, "effectMetric": metrics,
                            "samples": [{"prompt": r["prompt"], "reference": r.get("response", ""),
                                         "prediction": p} for r, p in zip(rows, predictions, strict=True)]})
        if ev["evalMode"] == MANUAL:  # answers collected; people score them (a result dataset)
            result = dataset_tasks.create_result_dataset(platform, f"{str(ev['name'])[:57]}-result", outputs)
            conf = {**ev["conf"], "resultDatasetId": result["id"], "resultDatasetIdStr": result["sid"]}
            platform.store.update("evaluations", ev_id, state=EvalState.DOING_WITH_MANUAL_BEGIN.value, conf=conf)
            return
        platform.store.update("evaluations", ev_id, state=EvalState.DONE.value, report=reports)
    except Exception as exc:
        log.exception("evaluation %s failed", ev_id)
        platform.store.update("evaluations", ev_id, state=EvalState.FAILED.value, errorMessage=str(exc))


def create_v1(platform: ServingSite, body: dict[str, Any]) -> dict[str, Any]:
    units = body.get("versionEvalInfo")
    if not isinstance(units, list) or not units:
        raise BodyError("versionEvalInfo", "is required: [{modelId, modelVersionId}]")
    for i, unit in enumerate(units):
        if not isinstance(unit, dict):
            raise BodyError(f"versionEvalInfo[{i}]", "must be {modelId, modelVersionId}")
        platform.store.get_or_raise("versions", unit.get("modelVersionId"), BodyError(
            f"versionEvalInfo[{i}].modelVersionId", f"model version {unit.get('modelVersionId')!r} not found"))
    ds = platform.store.get_or_raise("datasets", body.get("datasetId"),
                                     BodyError("datasetId", f"dataset {body.get('datasetId')!r} not found"))
    conf = body.get("evalStandardConf") or {}
    mode = str(conf.get("evalMode") or "rule")
    if mode != MANUAL and any(m not in ("rule",) for m in mode.split(",")):
        raise BodyError("evalStandardConf.evalMode", f"the local platform runs rule evaluation only (or 'manual': "
                        f"answers into a result dataset), got {mode!r}")
    ev = platform.store.insert("evaluations", {
        "name": body.get("name") or "eval", "units": [{"modelId": u.get("modelId"), "modelVersionId":
                                                       u["modelVersionId"]} for u in units],
        "datasetId": ds["id"], "datasetName": ds["name"], "evalMode": mode, "conf": conf,
        "scoreModes": list(conf.get("scoreModes") or ["accuracy", "similarity"]), "state": EvalState.PENDING.value})
    running = threading.Thread(target=_run, args=(platform, ev["id"]), name="qfnb-eval", daemon=True)
    platform.store.after_commit(running.start)  # a keyed create's: once the evaluation is stored
    return {"evalId": ev["id"], "evalIdStr": ev["sid"]}


def detail_v1(platform: ServingSite, body: dict[str, Any]) -> dict[str, Any]:
    ev = site.get(platform, "evaluations", body.get("id"), "id")
    units = []
    for u in ev["units"]:
        version = platform.store.get("versions", u["modelVersionId"]) or {}
        model = platform.store.get("models", version.get("modelId")) or {}
        units.append({"modelVersionId": u["modelVersionId"], "modelId": version.get("modelId"),
                      "modelName": model.get("modelName"), "state": ev["state"]})
    return {"evaluationId": ev["id"], "evaluationIdStr": ev["sid"], "name": ev["name"], "state": ev["state"],
            "evalUnits": units, "datasetId": ev["datasetId"], "datasetName": ev["datasetName"],
            "createTime": iso(ev["created"]), "computeResourceConf": {"vmType": 0, "vmNumber": 1},
            "evalStandardConf": ev["conf"], "errorMessage": ev.get("errorMessage")}


def report_v1(platform: ServingSite, body: dict[str, Any]) -> list[dict[str, Any]]:
    ev = site.get(platform, "evaluations", body.get("id"), "id")
    if ev["state"] != EvalState.DONE.value:
        raise BodyError("id", f"evaluation {ev['id']} is {ev['state']}; the report is ready once it is Done")
    return list(ev.get("report") or [])


def cancel_v1(platform: ServingSite, body: dict[str, Any]) -> dict[str, Any]:
    ev = site.get(platform, "evaluations", body.get("id"), "id")
    if ev["state"] not in (EvalState.PENDING.value, EvalState.DOING.value):
        return {"result": False, "errorMessage": f"evaluation is already {ev['state']}"}
    _cancel.setdefault((str(platform.settings.data_dir), ev["id"]), threading.Event()).set()
    platform.store.update("evaluations", ev["id"], state=EvalState.STOPPING.value)
    return {"result": True, "errorMessage": ""}


def recover(platform: ServingSite) -> None:
    """After a restart: evaluations that were under way go on from their last saved answer; a
    pending cancel completes."""
    for ev in platform.store.all("evaluations", lambda e: e.get("state") in (
            EvalState.PENDING.value, EvalState.DOING.value, EvalState.STOPPING.value)):
        if ev["state"] == EvalState.STOPPING.value:
            platform.store.update("evaluations", ev["id"], state=EvalState.STOPPED.value)
            continue
        log.info("resuming evaluation %s interrupted by a server restart", ev["sid"])
        threading.Thread(target=_run, args=(platform, ev["id"]), name="qfnb-eval", daemon=True).start()

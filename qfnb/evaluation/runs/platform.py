"""Running a platform (Qianfan) evaluation task.

``arun_platform_evaluation`` creates the task with ``Model.create_evaluation_task`` (its
``evalStandardConf`` from :func:`qfnb.evaluation.evaluators.platform.build_eval_standard_conf`), polls
``eval/detail`` every ``config.evaluation_online_polling_interval`` seconds (1 s on the local
platform) and reads ``eval/report`` into an :class:`EvaluationResult`.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from qfnb._core.config import resolve_config
from qfnb.protocol.console.enums import EvalState
from qfnb.protocol.console.textmetrics import as_text
from qfnb.resources.console import Model
from qfnb.resources.console.evaluation_task import (
    arun_evaluation_task,
    result_of,
)

from .._errors import EvaluationError, invalid
from ..evaluators.platform import QianfanEvaluator, build_eval_standard_conf
from ..results.result import BASE_COLUMNS, EvaluationResult

log = logging.getLogger("qfnb.evaluation")

_FINISHED = {EvalState.DONE, EvalState.PARTLY_DONE}


async def amodel_version_ref(model: Any) -> dict[str, Any]:
    """``{"modelId", "modelVersionId"}`` of a qfnb ``Model`` (ids looked up from its version when
    missing), a ``{"modelId", "modelVersionId"}`` dict or a ``(model_id, version_id)`` pair."""
    if isinstance(model, Mapping):
        mid, vid = model.get("modelId"), model.get("modelVersionId")
    elif isinstance(model, tuple) and len(model) == 2:
        mid, vid = model
    else:
        from qfnb.model import Model  # deferred: loads pydantic (`import qfnb.evaluation` does not)

        if not isinstance(model, Model):
            raise invalid("llms", f"platform evaluation takes published qfnb.model.Model objects, "
                                  f"got {type(model).__name__}")
        if model.set_id is None and model.version_id is not None:
            await model.aauto_complete_info()
        mid, vid = model.set_id, model.version_id
    if mid is None or vid is None:
        raise invalid("llms", f"platform evaluation needs published models (modelId and modelVersionId); "
                              f"got modelId={mid!r}, modelVersionId={vid!r}")
    return {"modelId": mid, "modelVersionId": vid}


def dataset_ref(dataset: Any) -> int | str:
    """The platform dataset id of ``dataset`` (a qfnb ``Dataset`` on the platform, or the id)."""
    if isinstance(dataset, int | str) and not isinstance(dataset, bool):
        return dataset
    for attr in ("qianfan_dataset_id", "dataset_id", "platform_id", "id"):
        value = getattr(dataset, attr, None)
        if isinstance(value, int | str) and value not in ("", None):
            return value
    raise invalid("dataset", "platform evaluation needs a dataset stored on the platform (or its id); "
                             "save it with Dataset.save(...) first")


def _random_name() -> str:
    alphabet = string.ascii_letters + string.digits
    return "sdk_eval_" + "".join(secrets.choice(alphabet) for _ in range(11))


def _entries(report: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``("{modelName}_{modelVersion}", entry)`` per model of an ``eval/report`` result."""
    for entry in report if isinstance(report, list) else [report]:
        if isinstance(entry, Mapping):
            yield f"{entry.get('modelName', '')}_{entry.get('modelVersion', '')}", entry


def report_metrics(report: Any) -> dict[str, dict[str, Any]]:
    """``{"{modelName}_{modelVersion}": effectMetric}`` from an ``eval/report`` result."""
    return {tag: dict(entry.get("effectMetric") or {}) for tag, entry in _entries(report)}


def report_samples(report: Any) -> pd.DataFrame | None:
    """Per-sample rows when the report carries them (the local platform adds ``samples``:
    ``[{prompt, reference, prediction}]`` per model); ``None`` otherwise."""
    rows: list[dict[str, Any]] = []
    for tag, entry in _entries(report):
        if not isinstance(entry.get("samples"), list):
            continue
        for i, sample in enumerate(entry["samples"]):
            if isinstance(sample, Mapping):
                rows.append({"llm": tag, "index": i, "input": as_text(sample.get("prompt")),
                             "reference": as_text(sample.get("reference")),
                             "output": as_text(sample.get("prediction")), "error": None})
    return pd.DataFrame(rows, columns=BASE_COLUMNS) if rows else None


async def arun_platform_evaluation(
    evaluators: Sequence[QianfanEvaluator], models: Sequence[Any], dataset: Any, *,
    console: Any = None, config: Any = None, poll_interval: float | None = None,
    timeout: float | None = None, name: str | None = None, description: str | None = None,
) -> EvaluationResult:
    """Create, wait for and read a platform evaluation task (see the module docstring).

    Returns a result without metrics (``state="DoingWithManualBegin"``) when the task is
    waiting for human scores. A failed/stopped task raises :class:`EvaluationError`; a
    cancelled wait (or ``timeout``) cancels the platform task.
    """
    eval_conf = build_eval_standard_conf(evaluators)
    if not models:
        raise invalid("llms", "at least one model is required")
    dataset_id = dataset_ref(dataset)
    versions = [await amodel_version_ref(m) for m in models]
    console = console or Model
    if poll_interval is None:
        poll_interval = float(resolve_config(config).evaluation_online_polling_interval)
    extra: dict[str, Any] = {"config": config} if config is not None else {}
    described = {"description": description} if description else {}

    eval_id, info = await arun_evaluation_task(
        name=name or _random_name(), version_info=versions, dataset_id=dataset_id, eval_config=eval_conf,
        poll_interval=poll_interval, timeout=timeout, console=console, **extra, **described)
    try:
        state = EvalState(info.get("state"))
    except ValueError:
        raise EvaluationError(f"evaluation task {eval_id}: unknown state {info.get('state')!r}") from None
    if state == EvalState.DOING_WITH_MANUAL_BEGIN:
        log.info("evaluation task %s waits for manual scoring on the platform", eval_id)
        return EvaluationResult({}, task_id=str(eval_id), state=str(state))
    if state not in _FINISHED:
        raise EvaluationError(f"evaluation task {eval_id} ended in state {state}")
    if state == EvalState.PARTLY_DONE:
        log.warning("evaluation task %s finished only partly", eval_id)
    report = result_of(await console.aget_evaluation_result(eval_id, **extra))
    return EvaluationResult(report_metrics(report), report_samples(report), task_id=str(eval_id), state=str(state))

"""The train stage: a fine-tune run created through the console, however it is called (v2
``CreateFineTuningTask``, v1 ``finetune/createJob``: ``FineTune.V2.create_task``, ``FineTune.create_job``),
holds its forecast trained tokens against the active budget before it is sent (``BudgetExceeded``
naming the budget and the forecast: nothing is sent), and a run that a console read shows ended (v2
``DescribeFineTuningTask``, v1 ``finetune/jobDetail``, and a job's task list for the runs held here:
done, failed or stopped) settles to the tokens it trained on and is in the usage ledger once
(:mod:`qfnb._core.http.recording.train_hold`).

The forecast is the run's worst case: where ``maxSteps`` bounds it, steps x batch x sequence length;
else its datasets' rows (read from the platform before the create) x epochs x sequence length, each
row's sequence at most that long (a preference pair's two sequences are not doubled). A caller that
holds its own forecast (``TrainAction``) creates inside :func:`~qfnb._core.http.recording.train_hold.holding`:
its create is not held again. A container (v2 ``CreateFineTuningJob``, v1 ``finetune/createTask``)
trains nothing and holds nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qfnb._core.config import Config
from qfnb._core.errors import QfnbError
from qfnb._core.http.call import Call
from qfnb._core.http.recording.batch_hold import Hold
from qfnb._core.http.recording.train_hold import (
    caller_holds,
    held_for,
    hold_training,
    keep,
    rows_worst_case,
    settle_training,
    trained_tokens,
    worst_case_tokens,
)
from qfnb._core.http.response import QfResponse
from qfnb._core.http.stages import Answer, Next
from qfnb._core.record.budget import active_budget
from qfnb._core.transport import json_or_none
from qfnb._core.transport.urls import url_of
from qfnb.protocol.console.enums import RunStatus, V1TrainStatus
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, Console, V2Action

__all__ = ["TrainRecord"]

logger = logging.getLogger("qfnb.usage")

#: a v2 task's ``runStatus`` / a v1 job's ``trainStatus`` once its run has ended
_V2_ENDED = frozenset({RunStatus.DONE.value, RunStatus.FAILED.value, RunStatus.STOPPED.value})
_V1_ENDED = frozenset({V1TrainStatus.FINISH.value, V1TrainStatus.FAIL.value, V1TrainStatus.STOP.value})


def _is(call: Call, path: str, action: str | None = None) -> bool:
    return call.path.rstrip("/").endswith(path) and (action is None or (call.params or {}).get("Action") == action)


@dataclass(slots=True, eq=False)
class TrainRecord:
    """Console calls other than the runs' creates and reads pass through; so do all others."""

    config: Config

    async def __call__(self, call: Call, next: Next) -> Answer:
        if call.api != "console" or call.method != "POST":
            return await next(call)
        if _is(call, Console.V2_FINETUNING, V2Action.CREATE_TASK):
            return await self._create(call, next, hyper_field="hyperParameterConfig", model_field="model",
                                      what="the fine-tuning task of job {jobId}", id_field="taskId")
        if _is(call, Console.FT_CREATE_JOB):
            return await self._create(call, next, hyper_field="trainConfig", model_field="trainType",
                                      what="the fine-tune job of task {taskId}", id_field="id")
        answer = await next(call)
        if isinstance(answer, QfResponse):
            if _is(call, Console.V2_FINETUNING, V2Action.DESCRIBE_TASK):
                self._settle_v2(answer.body.get("result"))
            elif _is(call, Console.V2_FINETUNING, V2Action.DESCRIBE_TASKS):
                result = answer.body.get("result")
                for task in (result.get("taskList") or []) if isinstance(result, Mapping) else []:
                    if isinstance(task, Mapping) and held_for(self.config, str(task.get("taskId"))) is not None:
                        self._settle_v2(task)  # a listing settles the runs held here, not the account's history
            elif _is(call, Console.FT_JOB_DETAIL):
                self._settle_v1(answer.body.get("result"))
        return answer

    async def _create(self, call: Call, next: Next, *, hyper_field: str, model_field: str, what: str,
                      id_field: str) -> Answer:
        """A run's create: its forecast held first (``BudgetExceeded``: unsent), kept under the run's id."""
        body = json_or_none(call.content)
        body = body if isinstance(body, dict) else {}
        hold: Hold | None = None
        if not caller_holds() and active_budget() is not None:
            given = body.get(hyper_field)
            hyper: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
            forecast = worst_case_tokens(hyper) or await self._rows_forecast(call, next, body, hyper)
            hold = hold_training(forecast, str(body.get(model_field) or ""), self.config,
                                 what=what.format_map({k: body.get(k, "?") for k in ("jobId", "taskId")}))
        try:
            answer = await next(call)
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        result = answer.body.get("result") if isinstance(answer, QfResponse) else None
        run_id = result.get(id_field) if isinstance(result, Mapping) else None
        if run_id is None or run_id == "":
            if hold is not None:
                hold.release()
        else:
            keep(self.config, str(run_id), hold)
        return answer

    async def _rows_forecast(self, call: Call, next: Next, body: Mapping[str, Any],
                             hyper: Mapping[str, Any]) -> int:
        """A run ``maxSteps`` does not bound: its datasets' rows (read from the platform) x epochs x sequence
        length, each row's sequence at most that long; 0 where a dataset's rows cannot be read (logged)."""
        rows = 0
        for read in _dataset_reads(body):
            try:
                answer = await next(self._read_call(call, *read))
            except QfnbError as exc:
                logger.info("fine-tune forecast: dataset %s's rows could not be read (%s); it holds none",
                            read[1], exc)
                continue
            rows += _entity_count(answer.body if isinstance(answer, QfResponse) else {})
        return rows_worst_case(rows, hyper)

    def _read_call(self, create: Call, path: str, ident: Any, action: str | None) -> Call:
        headers = {k: v for k, v in create.headers.items() if k.lower() != IDEMPOTENCY_HEADER.lower()}
        headers["x-bce-request-id"] = str(uuid.uuid4())  # a signature of its own
        field = "versionId" if action is not None else "datasetId"
        return Call("POST", url_of(self.config.console_api_base_url, path), {field: ident}, headers,
                    {"Action": action} if action is not None else None, "console", policy=create.policy)

    def _settle_v2(self, task: Any) -> None:
        if isinstance(task, Mapping) and task.get("runStatus") in _V2_ENDED and task.get("taskId"):
            elapsed = task.get("elapsedSeconds")
            settle_training(self.config, str(task["taskId"]), base=str(task.get("model") or "fine-tune"),
                            tokens=trained_tokens(task),
                            seconds=float(elapsed) if isinstance(elapsed, int | float) else 0.0)

    def _settle_v1(self, job: Any) -> None:
        if isinstance(job, Mapping) and job.get("trainStatus") in _V1_ENDED and job.get("id") is not None:
            elapsed = job.get("trainTime")
            settle_training(self.config, str(job["id"]), base=str(job.get("trainType") or "fine-tune"),
                            tokens=trained_tokens(job),
                            seconds=float(elapsed) if isinstance(elapsed, int | float) else 0.0)


def _dataset_reads(body: Mapping[str, Any]) -> list[tuple[str, Any, str | None]]:
    """The reads that tell a run create's datasets' rows: v2 ``DescribeDatasetVersion`` of each
    ``datasetConfig.versions[].versionId``, v1 ``dataset/info`` of each ``trainset[].id``."""
    conf = body.get("datasetConfig")
    if isinstance(conf, Mapping):
        versions = conf.get("versions")
        return [(Console.V2_DATASET, v["versionId"], "DescribeDatasetVersion")
                for v in (versions if isinstance(versions, list) else [])
                if isinstance(v, Mapping) and v.get("versionId") is not None]
    trainset = body.get("trainset")
    return [(Console.DATASET_INFO, item["id"], None)
            for item in (trainset if isinstance(trainset, list) else [])
            if isinstance(item, Mapping) and item.get("id") is not None]


def _entity_count(body: Mapping[str, Any]) -> int:
    """A dataset read's rows (v2: ``result.entityCount``; v1: ``result.versionInfo.entityCount``)."""
    result = body.get("result")
    if isinstance(result, Mapping) and isinstance(result.get("versionInfo"), Mapping):
        result = result["versionInfo"]
    count = result.get("entityCount") if isinstance(result, Mapping) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0

"""The train stage: a fine-tune run created through the console, however it is called (v2
``CreateFineTuningTask``, v1 ``finetune/createJob``: ``FineTune.V2.create_task``, ``FineTune.create_job``),
holds its forecast trained tokens against the active budget before it is sent (``BudgetExceeded``
naming the budget and the forecast: nothing is sent), and a run that a console read shows ended (v2
``DescribeFineTuningTask``, v1 ``finetune/jobDetail``, and a job's task list for the runs held here:
done, failed or stopped) settles to the tokens it
trained on and is in the usage ledger once (:mod:`qfnb._core.http.train_hold`).

The forecast is the run's worst case where ``maxSteps`` bounds it (steps x batch x sequence length);
else 0, and the run is counted when it ends. A caller that holds its own forecast (``TrainAction``)
creates inside :func:`~qfnb._core.http.train_hold.holding`: its create is not held again. A container
(v2 ``CreateFineTuningJob``, v1 ``finetune/createTask``) trains nothing and holds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qfnb._core.config import Config
from qfnb._core.http.call import Call
from qfnb._core.http.response import QfResponse
from qfnb._core.http.stages import Answer, Next
from qfnb._core.http.train_hold import (
    TrainHold,
    caller_holds,
    held_for,
    hold_training,
    keep,
    settle_training,
    trained_tokens,
    worst_case_tokens,
)
from qfnb._core.transport import json_or_none
from qfnb.protocol.console.enums import RunStatus, V1TrainStatus
from qfnb.protocol.wires.routes import Console, V2Action

__all__ = ["TrainRecord"]

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
        hold: TrainHold | None = None
        if not caller_holds():
            hold = hold_training(worst_case_tokens(body.get(hyper_field)), str(body.get(model_field) or ""),
                                 self.config, what=what.format_map({k: body.get(k, "?") for k in ("jobId", "taskId")}))
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

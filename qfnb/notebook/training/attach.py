"""``%qftrain --attach TASK``: a dashboard for a fine-tune already running (or ended) on the platform,
fed by polling the task's detail on qfnb's loop, so a dashboard survives a kernel restart; Stop asks
the platform, and an ended run shows what serves it (else offers Deploy, as a launch's dashboard does)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from qfnb._core.runtime import sync
from qfnb._core.runtime.poll import apoll_until
from qfnb.notebook.training import _background
from qfnb.notebook.training.dashboard import TrainingDashboard
from qfnb.notebook.training.jobs import wall_time
from qfnb.notebook.training.run import deploy_in_background, given_name
from qfnb.protocol.console.enums import ServiceStatus
from qfnb.resources.console import FineTune
from qfnb.resources.console import Model as ModelAPI
from qfnb.resources.console import Service as ServiceAPI
from qfnb.trainer import Event
from qfnb.trainer.steps.rewards import RewardProvider

log = logging.getLogger("qfnb.notebook.training.attach")


_RUN_STATUS = {"Done": "succeeded", "Failed": "failed", "Stopped": "stopped"}


def _run_status(detail: dict[str, Any]) -> str:
    return str(detail.get("runStatus") or "Running")


async def _platform_detail(task_id: str) -> dict[str, Any]:
    resp = await FineTune.V2.atask_detail(task_id=task_id)
    return dict(resp["result"])


async def aplatform_stop(task_id: str) -> None:
    await FineTune.V2.astop_task(task_id=task_id)


def platform_stop(task_id: str) -> None:
    sync.run(aplatform_stop(task_id))


@dataclass
class _AttachedTask:
    """What an attached dashboard knows of its job: the task's last detail (its Deploy publishes it)."""

    output: dict[str, Any]

Fetch = Callable[[str], "Awaitable[dict[str, Any]] | dict[str, Any]"]

Deployment = Callable[[str], "Awaitable[dict[str, Any]]"]


async def adeployment(task_id: str) -> dict[str, Any]:
    """What was published and deployed from run ``task_id``, as the platform lists it: a Serving
    service whose model version came from that run (``service_endpoint``, ``service_id``,
    ``model_version_id``, ``model_name``); empty when there is none."""
    listed = (await ServiceAPI.V2.aservice_list(max_keys=100, page_reverse=True)).parsed.result
    for svc in listed.service_list:
        if svc.run_status != ServiceStatus.SERVING.value or not svc.model_id:
            continue
        info = (await ModelAPI.V2.adescribe_model(svc.model_id)).parsed.result
        if str(info.source_info.get("trainTaskId")) == task_id:
            url = svc.url.rstrip("/")
            return {"service_endpoint": url.rsplit("/", 1)[-1] if url else svc.service_id,
                    "service_id": svc.service_id, "model_version_id": svc.model_id, "model_name": info.model_set_name}
    return {}


def _attached_title(task_id: str, detail: dict[str, Any]) -> str:
    """``model · task ID``, after the job's name when the user gave it one."""
    title = f"{detail.get('model') or 'fine-tune'} · task {task_id}"
    named = given_name(detail)
    return f"{named} · {title}" if named else title


def attach(
    task_id: str,
    *,
    fetch: Fetch = _platform_detail,
    stop: Callable[[str], Any] = aplatform_stop,
    interval: float = 1.0,
    show: bool = True,
    on_deploy: Callable[[TrainingDashboard], Any] | None = None,
    deployment: Deployment | None = None,
    reward: Callable[..., Any] | None = None,
) -> TrainingDashboard:
    """A dashboard for an existing task, fed by polling its detail every ``interval`` s on qfnb's
    loop. It is the same dashboard a launch shows: Stop while the task runs; once it succeeded, its
    model and endpoint when the platform serves it (``deployment``: :func:`adeployment` with the
    platform's own detail), else Deploy. ``reward``: a RFT run's reward function, scoring its samples
    in this kernel while it runs (a run whose kernel restarted goes on)."""
    first: dict[str, Any] = sync.run(_maybe(fetch(task_id)))  # an unknown task fails in the cell
    dash = TrainingDashboard(_attached_title(task_id, first), on_stop=lambda: sync.run(_maybe(stop(task_id))),
                             on_deploy=on_deploy or deploy_in_background)
    dash.launch_name = given_name(first)
    dash.trainer = task = _AttachedTask(first)
    if show:
        dash.show()
    if deployment is None and fetch is _platform_detail:
        deployment = adeployment
    poll = _TaskPoll(dash, task, task_id, fetch, interval, deployment, reward)
    poll.update(first)  # the dashboard knows its task (and an ended one its end) before attach() returns
    if poll.ended(first):
        sync.run(poll.afinish(first))
    else:
        _background.submit(poll.follow())
    return dash


@dataclass
class _TaskPoll:
    """An attached dashboard's poll of its task's detail."""

    dash: TrainingDashboard
    task: _AttachedTask  # the dashboard's job: its last detail
    task_id: str
    fetch: Fetch
    interval: float
    deployment: Deployment | None = None
    reward: Callable[..., Any] | None = None
    _waiting_told: bool = False

    async def detail(self) -> dict[str, Any]:
        try:
            return dict(await _maybe(self.fetch(self.task_id)))
        except Exception as exc:
            self.dash.state.note(f"poll failed: {exc}")
            raise

    def update(self, detail: dict[str, Any]) -> None:
        if detail.get("rewardRequestsPending") and self.reward is None and not self._waiting_told:
            self._waiting_told = True  # a RFT run whose reward function was in a kernel that is gone
            self.dash.state.note(f"the run waits for rewards: re-attach with %qftrain --attach {self.task_id} "
                                 "--reward module:function, or it stops when its clientWaitSeconds pass")
        self.task.output = detail
        self.dash.handle_event(Event(self.task_id, "Running", _run_status(detail), detail, action_class="TrainAction"))

    def ended(self, detail: dict[str, Any]) -> bool:
        return self.dash.done or _run_status(detail) in _RUN_STATUS

    async def afinish(self, last: dict[str, Any]) -> None:
        """The task's end as the platform recorded it (its time; a succeeded one's model and
        endpoint when it is served, so the dashboard offers no second Deploy)."""
        status = _RUN_STATUS[_run_status(last)]
        output = dict(last)
        if status == "succeeded" and self.deployment is not None:
            try:
                output.update(await self.deployment(self.task_id))
            except Exception as exc:  # the dashboard still shows the run; Deploy stays offered
                log.warning("could not look up what serves task %s: %s", self.task_id, exc)
        self.dash.finish(status, output=output, error=last.get("errorMessage"),
                         ended_at=wall_time(last.get("finishDate") or last.get("finishTime")))

    async def follow(self) -> None:
        """Poll until the task ends; retried for as long as the dashboard is open (the local daemon
        may be restarting)."""
        dash = self.dash
        provider = None if self.reward is None else RewardProvider(
            self.reward, self.task_id, None, on_error=lambda exc: dash.state.note(f"reward failed: {exc}")).start()
        try:
            last = await apoll_until(self.detail, self.ended, interval=self.interval, tick=self.update, retries=None,
                                     retry_on=(Exception,), max_backoff=max(self.interval, 10.0),
                                     what=f"fine-tune task {self.task_id}")
        except Exception as exc:  # a permanent error (the dashboard already shows it)
            log.warning("stopped following task %s: %s", self.task_id, exc)
            return
        finally:
            if provider is not None:
                await provider.aclose()
        if not dash.done:
            self.update(last)
            await self.afinish(last)
        if dash.deploy_when_done and dash.state.status == "succeeded" and dash.service is None:
            dash.deploy(wait=False)  # %qftrain --attach TASK --deploy, given while it ran


async def _maybe(value: Any) -> Any:
    """``value``, awaited when it is awaitable (test doubles may be plain functions)."""
    return await value if inspect.isawaitable(value) else value

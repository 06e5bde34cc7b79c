"""The training dashboard's view-model: trainer events (Contract 5) -> plain state. No I/O.

``TrainingState.apply(event)`` is called from the trainer's event thread; the widget reads
snapshots of this state and renders them, throttled. Kept free of IPython so it is unit-testable.
"""

from __future__ import annotations

import re
import shlex
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qfnb._core.runtime.progress import fmt_duration
from qfnb.model import Model
from qfnb.protocol.console import checkpoints as ckpt
from qfnb.trainer.event import Event

TERMINAL = ("succeeded", "failed", "stopped")
_MODEL_KEYS = ("model_id", "modelId", "model_version_id", "modelVersionId", "model_name", "modelName")
_SERVICE_KEYS = ("endpoint", "serviceEndpoint", "service_endpoint", "serviceId", "service_id", "url")


#: trainer action class -> what it does, in the user's words
ACTIONS = {
    "LoadDataSetAction": "preparing the dataset",
    "TrainAction": "training",
    "ModelPublishAction": "publishing the model",
    "DeployAction": "deploying the service",
    "EvaluateAction": "evaluating",
}
_STATES = {"Preceding": "starting", "Running": "", "Done": "done", "Error": "failed", "Stopped": "stopped"}


def plain_action(action: str) -> str:
    if action in ACTIONS:
        return ACTIONS[action]
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", action.removesuffix("Action")).lower()
    return words or "working"


def plain_event(action: str, state: str, desc: str) -> str:
    """``("LoadDataSetAction", "Preceding", "LoadDataSetAction starting")`` -> ``"preparing the dataset: starting"``."""
    what = plain_action(action)
    desc = desc.strip()
    if desc.startswith(action):  # the pipeline's own "XAction starting / done" says nothing more
        desc = ""
    status = _STATES.get(state, state.lower())
    detail = desc if desc else status
    if state in ("Error", "Stopped") and desc:
        detail = f"{status}: {desc}"
    return f"{what}: {detail}" if detail else what


def find_key(data: Any, keys: tuple[str, ...], depth: int = 3) -> str | None:
    """The first non-empty value under one of ``keys`` in (nested) dicts / objects."""
    if depth < 0 or data is None:
        return None
    if not isinstance(data, Mapping):
        data = getattr(data, "__dict__", None)
        if not isinstance(data, Mapping):
            return None
    for k in keys:
        v = data.get(k)
        if v not in (None, "", {}, []) and not isinstance(v, Mapping | list):
            return str(v)
    for v in data.values():
        if isinstance(v, Mapping) or hasattr(v, "__dict__"):
            found = find_key(v, keys, depth - 1)
            if found:
                return found
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, str):
        m = re.match(r"\s*(-?\d+(?:\.\d+)?)\s*%?", value)
        return float(m.group(1)) if m else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


#: the task detail's curves and the state's attribute for each
_CURVES = (("lossCurve", "loss"), ("evalLossCurve", "eval_loss"), ("rewardCurve", "reward"),
           ("rewardMeanCurve", "reward_mean"), ("evalRewardCurve", "eval_reward"))


@dataclass
class TrainingState:
    title: str = "fine-tune"
    status: str = "pending"  # pending | running | succeeded | failed | stopped
    phase: str = ""
    step: int = 0
    total_steps: int | None = None
    progress: float | None = None  # 0..1
    loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)  # the held-out split's (evalLossCurve)
    # a RFT run's: each step's mean reward, its moving mean, the held-out prompts' mean reward
    reward: list[tuple[int, float]] = field(default_factory=list)
    reward_mean: list[tuple[int, float]] = field(default_factory=list)
    eval_reward: list[tuple[int, float]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # the task detail's checkpointList
    held_out: str | None = None  # the file of the held-out split the run used (the task detail's evalFile)
    #: where the run's held-out answers collapsed (the task detail's ``collapse``: step, seen, lastGoodStep)
    collapse: dict[str, Any] | None = None
    #: a served model most of whose held-out answers degenerated, as all of its base's did (``servedUnjudged``)
    unjudged: dict[str, Any] | None = None
    elapsed: float | None = None
    eta: float | None = None
    task_id: str | None = None
    model_id: str | None = None
    model_name: str | None = None
    service: str | None = None
    error: str | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    started_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    wall: Callable[[], float] = field(default=time.time, repr=False)  # for the times a saved snapshot states
    ended_at: float | None = None  # wall time the job was seen to end
    platform_phase: str = ""  # what the platform says the worker does (loading weights, ...)
    reused: str | None = None  # the finished run reused instead of training again (qfnb.trainer.records.replay)
    #: a reused run's: the endpoint already serving its model, and when it ended (wall time)
    reused_service: str | None = None
    reused_end: float | None = None
    #: this dashboard's clock when ``elapsed`` was last told (the timer goes on from there between events)
    _elapsed_seen: float | None = field(default=None, repr=False)
    _last_key: tuple[str, str, str] | None = field(default=None, repr=False)
    #: (step, seen at by this dashboard's clock, the platform's elapsedSeconds then) when each step was first seen
    _step_times: list[tuple[int, float, float | None]] = field(default_factory=list, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def note(self, text: str) -> None:
        """One event-log line, stamped with the wall-clock time it was seen (a saved notebook's log
        says when things happened; a time since this dashboard opened read [00:00] on an attach)."""
        self.log.append(f"[{time.strftime('%H:%M:%S', time.localtime(self.wall()))}] {text}")

    def apply(self, event: Event) -> bool:
        """Fold one trainer event in. Returns True when the loss curve changed."""
        action = str(event.action_class or event.action_id or "action")
        state = str(event.action_state.value)
        desc = str(event.description or "")
        data = event.data
        key = (action, state, desc)
        if key != self._last_key:
            self._last_key = key
            self.note(plain_event(action, state, desc))
        if not self.finished:
            if state in ("Preceding", "Running"):
                self.status, self.phase = "running", plain_action(action)
            elif state == "Error":
                self.status, self.error = "failed", desc or f"{action} failed"
            elif state == "Stopped":
                self.status = "stopped"
        curve_changed = self._apply_detail(data) if isinstance(data, Mapping) else False
        if data is not None and state == "Done":
            if "Publish" in action:
                self.model_id = find_key(data, _MODEL_KEYS) or self.model_id
            if "Deploy" in action or "Service" in action:
                self.service = find_key(data, _SERVICE_KEYS) or self.service
        return curve_changed

    def _apply_detail(self, d: Mapping[str, Any]) -> bool:
        """The task-detail fields (Contract 3 extensions are optional)."""
        self.task_id = str(d.get("taskId") or self.task_id or "") or None
        self._take_replayed(d.get("replayed"))
        step, total = _num(d.get("currentStep")), _num(d.get("totalSteps"))
        if step is not None:
            self._time_step(int(step), _num(d.get("elapsedSeconds")))
            self.step = int(step)
        phase = str(d.get("phase") or "")
        if phase and phase != self.platform_phase:
            self.platform_phase = phase
            self.note(phase)
        if total:
            self.total_steps = int(total)
        if self.total_steps:
            self.progress = min(self.step / self.total_steps, 1.0)
        elif (p := _num(d.get("runProgress") if "runProgress" in d else d.get("progress"))) is not None:
            self.progress = min(p / 100.0, 1.0)
        if "elapsedSeconds" in d:
            self.elapsed, self._elapsed_seen = _num(d.get("elapsedSeconds")), self.clock()
        self.eta = _num(d.get("etaSeconds")) if "etaSeconds" in d else self.eta
        self.error = str(d["errorMessage"]) if d.get("errorMessage") else self.error
        self.held_out = str(d["evalFile"]) if d.get("evalFile") else self.held_out
        changed = self._take_checkpoints(d.get("checkpointList"))
        changed = self._take_verdicts(d) or changed
        for key, attr in _CURVES:
            curve = d.get(key)
            if isinstance(curve, list) and len(curve) != len(getattr(self, attr)):
                setattr(self, attr, [(int(s), float(v)) for s, v in curve])
                changed = True
        return changed

    def _take_replayed(self, replayed: Any) -> None:
        """A reused run (:mod:`qfnb.trainer.records.replay`): which, when it ended, and what serves its model."""
        if not (isinstance(replayed, Mapping) and replayed.get("task_id")):
            return
        when = f", finished {replayed['finished']}" if replayed.get("finished") else ""
        self.reused = f"{replayed['task_id']}{when}"
        service = replayed.get("service")
        if isinstance(service, Mapping) and service.get("service_endpoint"):
            self.reused_service = str(service["service_endpoint"])
        self.reused_end = _when(replayed.get("finished")) or self.reused_end

    def _take_checkpoints(self, saved: Any) -> bool:
        """The task detail's (or the trainer output's) checkpoint list, when it has news."""
        if not isinstance(saved, list):
            return False
        taken = [dict(c) for c in saved if isinstance(c, Mapping) and "step" in c]
        if taken == self.checkpoints:
            return False
        self.checkpoints = taken
        return True

    def finish(self, status: str, *, output: Any = None, error: str | None = None,
               ended_at: float | None = None) -> None:
        """The job ended (``ended_at``: when, by the platform's record; else now, when it is seen)."""
        if status not in TERMINAL:
            raise ValueError(f"status must be one of {TERMINAL}, got {status!r}")
        if self.elapsed is not None:  # the platform's time, with what ticked since it last said
            self.elapsed = self.elapsed_now
        self.status = status
        if error:
            self.error = error
        if output is not None:
            self.model_id = find_key(output, _MODEL_KEYS) or self.model_id
            self.service = find_key(output, _SERVICE_KEYS) or self.service
            self.task_id = find_key(output, ("task_id", "taskId")) or self.task_id
            model = output.get("model") if isinstance(output, Mapping) else None
            named = (model.get("name") if isinstance(model, Mapping)
                     else model.name if isinstance(model, Model) else None)
            self.model_name = str(named) if named else find_key(output, ("model_name", "modelName")) or self.model_name
            if isinstance(output, Mapping) and output.get("checkpoints"):
                self._take_checkpoints(output["checkpoints"])  # the trainer's output (with its metric, if any)
        if status == "succeeded" and self.total_steps:
            self.step, self.progress, self.eta = max(self.step, self.total_steps), 1.0, 0.0
        if self.reused is not None:  # a reused run ended when it first did, and its model may serve already
            ended_at = ended_at if ended_at is not None else self.reused_end
            if self.reused_service and not self.service:
                self.service = self.reused_service
        self.ended_at = ended_at if ended_at is not None else self.wall()
        self.note(f"fine-tune {status}" + (f": {error}" if error else "")
                  + (f" (at {_stamp(ended_at)})" if ended_at is not None else ""))
        if self.reused is not None and self.service and self.service == self.reused_service:
            self.note(f"deployed as {self.service} (when it first ran)")

    @property
    def elapsed_now(self) -> float:
        """The run's time so far: the platform's last ``elapsedSeconds`` and, while it runs, the time
        since (a phase without events, such as loading the weights, still ticks); else this clock's."""
        if self.elapsed is None:
            return self.clock() - self.started_at
        if self.finished or self._elapsed_seen is None:
            return self.elapsed
        return self.elapsed + max(0.0, self.clock() - self._elapsed_seen)

    def _time_step(self, step: int, platform_elapsed: float | None) -> None:
        """When a step count was first seen: by the platform's own clock (``elapsedSeconds``, the
        time the worker wrote it) when it says, and by this dashboard's."""
        if step >= 1 and (not self._step_times or step > self._step_times[-1][0]):
            self._step_times.append((step, self.clock(), platform_elapsed))

    @property
    def seconds_per_step(self) -> float | None:
        """The mean time of a step from the first step seen to the last, evaluation pauses included
        (by the event timestamps: the platform's when both ends carry one, else when they arrived);
        None until two step counts were seen. Loading the model never counts as steps."""
        if len(self._step_times) < 2:
            return None
        (first, seen0, platform0), (last, seen1, platform1) = self._step_times[0], self._step_times[-1]
        took = platform1 - platform0 if platform0 is not None and platform1 is not None else seen1 - seen0
        return took / (last - first) if took > 0 else None

    @property
    def measured_eta(self) -> float | None:
        """Seconds left: the steps left times :attr:`seconds_per_step` (so the evaluation pauses to
        come are counted as those so far were); None before two step counts were seen."""
        per_step = self.seconds_per_step
        if per_step is None or not self.total_steps:
            return None
        return max(self.total_steps - self.step, 0) * per_step

    @property
    def doing(self) -> str:
        """What is happening now, in words: the platform's phase before step 1, else the action."""
        if self.finished:
            return ""
        if self.step == 0 and self.phase == "training":
            return self.platform_phase or "preparing the worker (loading the model)"
        return self.phase

    def progress_text(self) -> str:
        steps = (
            f"step {self.step}/{self.total_steps}"
            if self.total_steps
            else (f"{self.progress:.0%}" if self.progress is not None else "step 0 (not started)")
        )
        left = None if self.finished else self.measured_eta
        eta = "" if left is None else f" · ETA {fmt_duration(left)}"
        loss = f" · loss {self.loss[-1][1]:.4f}" if self.loss else ""
        if self.eval_loss:
            loss += f" · eval loss {self.eval_loss[-1][1]:.4f}"
        if self.reward_mean:
            loss += f" · reward {self.reward_mean[-1][1]:.3f} (moving mean)"
        return f"{steps} · elapsed {fmt_duration(self.elapsed_now)}{eta}{loss}"

    @property
    def best(self) -> Mapping[str, Any] | None:
        """The best checkpoint (qfnb.protocol.console.checkpoints: the lowest held-out loss, or the best metric)."""
        return ckpt.best_checkpoint(self.checkpoints)

    @property
    def overfit(self) -> ckpt.Overfit | None:
        """Over-fitting on the held-out curve (the checkpoints' held-out losses when there are any)."""
        points = [(int(c["step"]), float(c["evalLoss"])) for c in self.checkpoints if c.get("evalLoss") is not None]
        return ckpt.overfitting(points or self.eval_loss)

    @property
    def held_out_score(self) -> tuple[str, list[tuple[int, float]]] | None:
        """The checkpoints' own held-out score, drawn beside the loss: a DPO/KTO run's preference accuracy,
        a PostPretrain run's perplexity (None for SFT: its held-out loss is on the chart already)."""
        for key, name in _SCORES.items():
            points = [(int(c["step"]), float(c[key])) for c in self.checkpoints if _num(c.get(key)) is not None]
            if points:
                return name, points
        return None

    def checkpoint_text(self) -> str:
        """``best checkpoint: step 16 of 5 (held-out loss 2.40)`` and the over-fitting, when known."""
        best = self.best
        if best is None:
            return ""
        if best.get("metric") is not None:
            score = f"{best['metricName']} {float(best['metric']):.3f}"
        elif best.get(ckpt.PREFERENCE_SCORE) is not None:  # a DPO or KTO run
            score = (f"held-out preference accuracy {float(best[ckpt.PREFERENCE_SCORE]):.3f}, reward margin "
                     f"{float(best.get(ckpt.REWARD_MARGIN) or 0):+.3f}")
        else:
            score = f"held-out loss {float(best['evalLoss']):.3f}"
        text = f"best checkpoint: step {best['step']}, of {len(self.checkpoints)} saved ({score})"
        over = self.overfit
        return f"{text} · {over.describe()}" if over is not None else text

    def collapse_text(self) -> str:
        """``answers collapsed at step 24: …; the model is step 16's checkpoint`` (empty when they did not)."""
        c = self.collapse
        if not c:
            return ""
        good = c.get("lastGoodStep")
        then = (f"the model is step {good}'s checkpoint, the last that still answered" if good is not None
                else "no checkpoint still answered")
        read = "answers"
        if c.get("prompts") == "training":  # no held-out data: the final answers to training prompts were read
            read, then = "answers to training prompts", "no held-out data, so no checkpoint to serve"
        return f"{read} collapsed at step {c.get('step')}: {c.get('seen') or 'degenerate answers'}; {then}"

    def _take_verdicts(self, d: Mapping[str, Any]) -> bool:
        """The detail's ``collapse`` and ``servedUnjudged``: each noted in the log when it shows or changes."""
        collapse, unjudged = d.get("collapse"), d.get("servedUnjudged")
        changed = False
        if isinstance(collapse, Mapping) and dict(collapse) != self.collapse:
            self.collapse = dict(collapse)
            self.note("⚠ " + self.collapse_text())
            changed = True
        if isinstance(unjudged, Mapping) and dict(unjudged) != self.unjudged:
            self.unjudged = dict(unjudged)
            self.note("⚠ " + self.unjudged_text())
            changed = True
        return changed

    def unjudged_text(self) -> str:
        """``the served model (step 8) answers no better than its base: …`` (empty when it does)."""
        u = self.unjudged
        if not u:
            return ""
        return (f"the served model (step {u.get('step')}) answers no better than its base, whose answers degenerated "
                f"too: {u.get('seen') or 'degenerate answers'}; read its answers before using it")

    @property
    def model_label(self) -> str | None:
        """``"ft_zorvia (id 3)"`` rather than a bare number."""
        if self.model_name and self.model_id and self.model_name != self.model_id:
            return f"{self.model_name} (id {self.model_id})"
        return self.model_name or self.model_id

    def result_fields(self) -> list[tuple[str, str]]:
        """What the job has to show beside its progress, as ``(label, value)`` pairs in the order every
        rendering lists them: task, reused, checkpoints, model, endpoint, error (only those it has)."""
        fields = []
        if self.task_id:
            fields.append(("task", self.task_id))
        if self.reused:
            fields.append(("reused", self.reused))
        if self.checkpoints:
            fields.append(("checkpoints", self.checkpoint_text()))
        if self.collapse:
            fields.append(("collapse", self.collapse_text()))
        if self.unjudged:
            fields.append(("unjudged", self.unjudged_text()))
        if self.model_id:
            fields.append(("model", self.model_label or self.model_id))
        if self.service:
            fields.append(("endpoint", self.service))
        if self.error and self.status == "failed":
            fields.append(("error", self.error))
        return fields

    def next_steps(self, *, var_name: str | None = None, can_deploy: bool = True,
                   eval_data: str | None = None) -> list[str]:
        """Copyable next steps for THIS finished job, each a command that does that step."""
        if self.status != "succeeded":
            return []
        if self.service:
            steps = [f"%%qfchat -m {self.service}"]
            if eval_data:
                steps.append(f"%qfeval --models {self.service} --dataset {shlex.quote(eval_data)} --limit 20")
            return steps
        if not can_deploy:
            return []
        if var_name:
            return [f"{var_name}.deploy()"]
        return [f"%qftrain --attach {self.task_id} --deploy"] if self.task_id else []

    def summary(self) -> str:
        """The one-line text/plain form (what a saved notebook shows without widgets)."""
        parts = [f"[qftrain] {self.title}: {self.status}", self.progress_text()]
        parts += [_TEXT_FORMS[label].format(value) for label, value in self.result_fields()]
        parts.append(self.as_of())
        return " · ".join(parts)

    def as_of(self) -> str:
        """When this state was true, for a snapshot that outlives its kernel: a finished job's end, or
        the time of a running job's snapshot (which no kernel updates once the one that drew it is gone)."""
        if self.finished:
            return f"ended {_stamp(self.ended_at or self.wall())}"
        return f"snapshot {_stamp(self.wall())}, not live"


# how the text/plain summary words each of result_fields()
_TEXT_FORMS = {"task": "task {}", "reused": "↺ reused finished run {} (--fresh trains again)",
               "checkpoints": "{}", "collapse": "⚠ {}", "unjudged": "⚠ {}", "model": "model {}",
               "endpoint": "service {}", "error": "error: {}"}


#: a checkpoint's held-out score of another train mode -> its name on the chart
_SCORES = {ckpt.PREFERENCE_SCORE: "held-out preference accuracy", "valid_perplexity": "held-out perplexity"}


def _when(value: Any) -> float | None:
    """A platform date (ISO 8601, or epoch seconds) as wall time; None when it is neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

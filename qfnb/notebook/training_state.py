"""The training dashboard's view-model: trainer events (Contract 5) -> plain state. No I/O.

``TrainingState.apply(event)`` is called from the trainer's event thread; the widget reads
snapshots of this state and renders them, throttled. Kept free of IPython so it is unit-testable.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qfnb.notebook import _fmt

TERMINAL = ("succeeded", "failed", "stopped")
_MODEL_KEYS = ("model_id", "modelId", "model_version_id", "modelVersionId", "model_name", "modelName")
_SERVICE_KEYS = ("endpoint", "serviceEndpoint", "service_endpoint", "serviceId", "service_id", "url")


def _state_name(state: Any) -> str:
    return str(getattr(state, "value", state))


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
    if value is None or value == "":
        return None
    if isinstance(value, str):
        m = re.match(r"\s*(-?\d+(?:\.\d+)?)\s*%?", value)
        return float(m.group(1)) if m else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class TrainingState:
    title: str = "fine-tune"
    status: str = "pending"  # pending | running | succeeded | failed | stopped
    phase: str = ""
    step: int = 0
    total_steps: int | None = None
    progress: float | None = None  # 0..1
    loss: list[tuple[int, float]] = field(default_factory=list)
    elapsed: float | None = None
    eta: float | None = None
    task_id: str | None = None
    model_id: str | None = None
    service: str | None = None
    error: str | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    started_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _last_key: tuple[str, str, str] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def note(self, text: str) -> None:
        self.log.append(f"[{_fmt.duration(self.clock() - self.started_at)}] {text}")

    def apply(self, event: Any) -> bool:
        """Fold one trainer event in. Returns True when the loss curve changed."""
        action = str(getattr(event, "action_class", "") or getattr(event, "action_id", "") or "action")
        state = _state_name(getattr(event, "action_state", ""))
        desc = str(getattr(event, "description", "") or "")
        data = getattr(event, "data", None)
        key = (action, state, desc)
        if key != self._last_key:
            self._last_key = key
            self.note(f"{action} {state}" + (f": {desc}" if desc else ""))
        if not self.finished:
            if state in ("Preceding", "Running"):
                self.status, self.phase = "running", action
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
        step, total = _num(d.get("currentStep")), _num(d.get("totalSteps"))
        if step is not None:
            self.step = int(step)
        if total:
            self.total_steps = int(total)
        if self.total_steps:
            self.progress = min(self.step / self.total_steps, 1.0)
        elif (p := _num(d.get("runProgress") if "runProgress" in d else d.get("progress"))) is not None:
            self.progress = min(p / 100.0, 1.0)
        self.elapsed = _num(d.get("elapsedSeconds")) if "elapsedSeconds" in d else self.elapsed
        self.eta = _num(d.get("etaSeconds")) if "etaSeconds" in d else self.eta
        if d.get("errorMessage"):
            self.error = str(d["errorMessage"])
        curve = d.get("lossCurve")
        if isinstance(curve, list) and len(curve) != len(self.loss):
            self.loss = [(int(s), float(v)) for s, v in curve]
            return True
        return False

    def finish(self, status: str, *, output: Any = None, error: str | None = None) -> None:
        if status not in TERMINAL:
            raise ValueError(f"status must be one of {TERMINAL}, got {status!r}")
        self.status = status
        if error:
            self.error = error
        if output is not None:
            self.model_id = find_key(output, _MODEL_KEYS) or self.model_id
            self.service = find_key(output, _SERVICE_KEYS) or self.service
        if status == "succeeded" and self.total_steps:
            self.step, self.progress, self.eta = max(self.step, self.total_steps), 1.0, 0.0
        self.note(f"fine-tune {status}" + (f": {error}" if error else ""))

    @property
    def elapsed_now(self) -> float:
        return self.elapsed if self.elapsed is not None else self.clock() - self.started_at

    def progress_text(self) -> str:
        steps = (
            f"step {self.step}/{self.total_steps}"
            if self.total_steps
            else (f"{self.progress:.0%}" if self.progress is not None else "waiting for the first step")
        )
        eta = "" if self.finished else f" · ETA {_fmt.duration(self.eta)}"
        loss = f" · loss {self.loss[-1][1]:.4f}" if self.loss else ""
        return f"{steps} · elapsed {_fmt.duration(self.elapsed_now)}{eta}{loss}"

    def summary(self) -> str:
        """The one-line text/plain form (what a saved notebook shows without widgets)."""
        parts = [f"[qftrain] {self.title}: {self.status}", self.progress_text()]
        if self.model_id:
            parts.append(f"model {self.model_id}")
        if self.service:
            parts.append(f"service {self.service}")
        if self.error and self.status == "failed":
            parts.append(f"error: {self.error}")
        return " · ".join(parts)

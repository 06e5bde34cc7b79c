"""A job's steps as progress: ``(current step, total steps)`` observations fed to a bar.

A fine-tune reports where it is by polls (``currentStep`` / ``totalSteps`` in the task detail,
Contract 3); :class:`StepFeed` turns each newly finished step into one ``on_result`` of a
:class:`~qfnb._core.runtime.progress.ProgressCallback`, so a training shows the same bar as a batch
(a widget in a kernel, tqdm-style text on a terminal) with an ETA smoothed over measured steps.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from qfnb._core.runtime.progress import ProgressCallback

__all__ = ["StepFeed"]


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


class StepFeed:
    """Feeds ``bar`` from step observations; thread-safe, idempotent on repeated polls."""

    def __init__(self, bar: ProgressCallback) -> None:
        self.bar = bar
        self.seen = 0
        self.total: int | None = None
        self._started = False
        self._lock = threading.Lock()

    def observe(self, step: int | None, total: int | None = None) -> None:
        """The job is at ``step`` of ``total`` (either may be unknown)."""
        with self._lock:
            if not self._started or (total and total != self.total):
                self._started, self.total = True, total or self.total
                self.bar.on_start(self.total)
            while step is not None and self.seen < step:
                self.bar.on_result(self.seen, True)
                self.seen += 1

    def event(self, event: Any) -> None:
        """A trainer event (Contract 5): its ``data`` may carry ``currentStep`` / ``totalSteps``."""
        data = getattr(event, "data", None)
        if isinstance(data, Mapping) and ("currentStep" in data or "totalSteps" in data):
            self.observe(_int(data.get("currentStep")), _int(data.get("totalSteps")))

    def close(self) -> None:
        self.bar.on_close()

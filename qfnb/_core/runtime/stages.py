"""A long call made of named stages (publish, create the service, start it) as progress.

A deploy has no steps to count, but it has stages, each waiting on a platform state: :class:`StageFeed`
shows them on the same bar as a batch or a training (:mod:`qfnb._core.runtime.progress`): a widget in a
notebook kernel, whether or not ``%load_ext qfnb`` ran, and a tqdm-style line on a terminal, with the
stage and the platform's last word (``starting the service · Deploying``) where the count would be.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from qfnb._core.runtime.progress import (
    Progress,
    ProgressArg,
    ProgressCallback,
    ProgressSnapshot,
    bar_cells,
    fmt_duration,
    in_notebook_kernel,
    make_progress,
)

__all__ = ["StageFeed", "StageProgress", "StageSnapshot", "make_stages"]


@dataclass(frozen=True)
class StageSnapshot(ProgressSnapshot):
    stage: str = ""
    detail: str = ""

    def meter(self, width: int = 0) -> str:
        """``'deploy m: starting the service · Deploying · 2/3 67%|█████▍  | [00:12]'``."""
        done = self.closed and self.total is not None and self.finished >= self.total
        what = (self.detail or "done") if done else " · ".join(x for x in (self.stage, self.detail) if x)
        count = f"{self.finished}/{'?' if self.total is None else self.total}"
        pct = "" if self.fraction is None else f" {self.fraction:.0%}"
        if width and self.fraction is not None:
            pct += f"|{bar_cells(self.fraction, width)}|"
        return f"{self.desc}: {what + ' · ' if what else ''}{count}{pct} [{fmt_duration(self.elapsed)}]"


class StageProgress(Progress):
    """A :class:`Progress` whose meter names the current stage instead of counting results."""

    def __init__(self, stages: Sequence[str], *, desc: str, **kwargs: object) -> None:
        super().__init__(len(stages), desc=desc, **kwargs)  # type: ignore[arg-type]
        self.stage = ""
        self.detail = ""

    def show(self, stage: str | None = None, detail: str | None = None) -> None:
        """Name the current stage (and the platform's last word on it) and redraw."""
        if stage is not None:
            self.stage, self.detail = stage, ""
        if detail is not None:
            self.detail = detail
        self.on_start(None)  # a redraw, unthrottled (the total stays)

    def _snapshot_locked(self) -> ProgressSnapshot:
        s = super()._snapshot_locked()
        return StageSnapshot(s.desc, s.total, s.done, s.failed, s.elapsed, s.closed, s.smoothed_rate,
                             self.stage, self.detail)


class StageFeed:
    """Walks ``bar`` through ``stages``: :meth:`enter` counts the stages before it as done,
    :meth:`note` shows the platform's state, :meth:`close` ends it (a failure leaves it short)."""

    def __init__(self, bar: ProgressCallback, stages: Sequence[str]) -> None:
        self.bar, self.stages = bar, list(stages)
        self.counted = 0  # stages counted as done
        self._lock = threading.Lock()
        bar.on_start(len(self.stages))

    def _count_to(self, n: int) -> None:
        with self._lock:
            while self.counted < n:
                self.bar.on_result(self.counted, True)
                self.counted += 1

    def enter(self, stage: str) -> None:
        """``stage`` begins: the stages before it are done."""
        self._count_to(self.stages.index(stage))
        if isinstance(self.bar, StageProgress):
            self.bar.show(stage)

    def note(self, detail: str) -> None:
        if isinstance(self.bar, StageProgress) and detail and detail != self.bar.detail:
            self.bar.show(detail=detail)

    def close(self, *, ok: bool, detail: str = "") -> None:
        """The call ended: every stage done (``ok``), or the bar stays short of its total (failed)."""
        if ok:
            self._count_to(len(self.stages))
        if isinstance(self.bar, StageProgress) and detail:
            self.bar.detail = detail
        self.bar.on_close()


def make_stages(progress: ProgressArg, stages: Sequence[str], *, desc: str) -> StageFeed | None:
    """Resolve a ``progress=`` argument (as :func:`~qfnb._core.runtime.progress.make_progress`: ``None``
    -> a bar only inside a notebook kernel, ``True`` anywhere, ``False`` none, or a callback) into a
    feed of ``stages``; drawn at once, so call it in the caller's thread (its cell)."""
    if progress is None or progress is True:
        progress = StageProgress(stages, desc=desc) if progress or in_notebook_kernel() else False
    bar = make_progress(progress, desc=desc)
    return StageFeed(bar, stages) if bar is not None else None

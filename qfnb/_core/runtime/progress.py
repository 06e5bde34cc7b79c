"""Batch progress: a tqdm-style bar that is a widget in a notebook and text elsewhere.

This module implements **Contract 8** (see ``docs/architecture.md``). It lives in the core so
every layer resolves ``progress=`` the same way (:func:`make_progress`, one type
:data:`ProgressArg`); the notebook layer's widget is plugged in at
:data:`qfnb._core.plugins.widget_renderer`. The SDK calls any object
with three methods — ``on_start(total)``, ``on_result(index, ok)``, ``on_close()`` — from any
thread; :class:`Progress` is the stock implementation. Importing this module imports neither
IPython nor ipywidgets.

Rendering is throttled (default every 0.2 s), so the per-result cost is a lock, two integer
increments and a clock read; the final state is always rendered on ``on_close``.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Literal, Protocol, runtime_checkable

from qfnb._core import plugins
from qfnb._core.http.throttle import Throttle

log = logging.getLogger("qfnb.progress")

Mode = Literal["auto", "widget", "text", "off"]

__all__ = [
    "Progress",
    "ProgressArg",
    "ProgressCallback",
    "ProgressSnapshot",
    "Renderer",
    "TextRenderer",
    "fmt_duration",
    "fmt_rate",
    "in_notebook_kernel",
    "make_progress",
    "widget_factory",
]


@runtime_checkable
class ProgressCallback(Protocol):
    """Contract 8: what batch runners call. Methods may be called from any thread."""

    def on_start(self, total: int | None) -> None: ...
    def on_result(self, index: int, ok: bool) -> None: ...
    def on_close(self) -> None: ...


@dataclass(frozen=True)
class ProgressSnapshot:
    """An immutable view of a bar's counters (what renderers draw)."""

    desc: str
    total: int | None
    done: int
    failed: int
    elapsed: float
    closed: bool = False
    #: items per second, smoothed over the measured gaps between results (see :class:`Progress`)
    smoothed_rate: float | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def rate(self) -> float | None:
        return self.finished / self.elapsed if self.elapsed > 0 and self.finished else None

    @property
    def eta(self) -> float | None:
        """Seconds left, from the smoothed rate of measured results (not the time before the first)."""
        r = self.smoothed_rate
        if self.total is None or r is None or r <= 0:
            return None
        return max(self.total - self.finished, 0) / r

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(self.finished / self.total, 1.0)

    def meter(self, width: int = 0) -> str:
        """``'batch: 42/100 (41 ok, 1 failed) 42% [00:03<00:04, 12.50it/s]'``; with ``width`` a
        tqdm-style bar of that many cells after the percentage (``42%|████▏     |``)."""
        total = "?" if self.total is None else str(self.total)
        pct = "" if self.fraction is None else f" {self.fraction:.0%}"
        if width and self.fraction is not None:
            pct += f"|{bar_cells(self.fraction, width)}|"
        eta = "" if self.closed else f"<{fmt_duration(self.eta)}"
        return (
            f"{self.desc}: {self.finished}/{total} ({self.done} ok, {self.failed} failed){pct} "
            f"[{fmt_duration(self.elapsed)}{eta}, {fmt_rate(self.rate)}]"
        )


#: The one type of every ``progress=`` parameter in qfnb (see :func:`make_progress`).
ProgressArg = bool | ProgressCallback | None

def widget_factory() -> Callable[[str], Renderer] | None:
    """How widget bars draw: :data:`qfnb._core.plugins.widget_renderer`, which the package root
    fills in (the core never imports the notebook layer)."""
    return plugins.widget_renderer


_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar_cells(fraction: float, width: int) -> str:
    """``width`` cells of a tqdm-style bar filled to ``fraction`` (eighths of a cell)."""
    eighths = round(max(0.0, min(fraction, 1.0)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def fmt_duration(seconds: float | None) -> str:
    """``75.2 -> '01:15'``, ``3725 -> '1:02:05'``, ``None -> '?'``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_rate(per_second: float | None, unit: str = "it") -> str:
    if per_second is None or per_second <= 0 or not math.isfinite(per_second):
        return f"?{unit}/s"
    if per_second >= 1:
        return f"{per_second:.2f}{unit}/s"
    return f"{1 / per_second:.2f}s/{unit}"


class Renderer(Protocol):
    """Draws snapshots of a bar: text here, a widget when the notebook layer registered one."""

    def render(self, snap: ProgressSnapshot) -> None: ...
    def close(self, snap: ProgressSnapshot) -> None: ...


class _NullRenderer:
    def render(self, snap: ProgressSnapshot) -> None:
        return None

    def close(self, snap: ProgressSnapshot) -> None:
        return None


#: cells of the terminal bar
BAR_WIDTH = 20


class TextRenderer:
    """Plain text on a stream: ``\\r`` redraws on a TTY, one line per ``line_interval`` otherwise."""

    def __init__(self, stream: IO[str] | None = None, line_interval: float = 5.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._lines = Throttle(0.0 if self.tty else line_interval)

    def render(self, snap: ProgressSnapshot) -> None:
        if self.tty:
            self.stream.write("\r" + snap.meter(BAR_WIDTH))
            self.stream.flush()
        elif self._lines.ready():
            self.stream.write(snap.meter() + "\n")

    def close(self, snap: ProgressSnapshot) -> None:
        self.stream.write(("\r" + snap.meter(BAR_WIDTH)) if self.tty else snap.meter())
        self.stream.write("\n")
        self.stream.flush()


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel. Never imports IPython: a kernel has already loaded it, so it
    is looked up in ``sys.modules`` (only the notebook layer imports IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """A thread-safe, throttled progress bar implementing :class:`ProgressCallback`.

    ``mode="auto"`` picks the ipywidgets bar inside a notebook kernel and text on stderr
    elsewhere; ``"off"`` only counts. Also usable directly::

        with Progress(total=len(items), desc="embed") as bar:
            for i, item in enumerate(items):
                bar.on_result(i, ok=work(item))
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        desc: str = "batch",
        mode: Mode = "auto",
        stream: IO[str] | None = None,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in ("auto", "widget", "text", "off"):
            raise ValueError(f"mode must be one of auto/widget/text/off, got {mode!r}")
        self.desc = desc
        self.total = total
        self.mode: Mode = mode
        self._stream = stream
        self._clock = clock
        self._throttle = Throttle(min_interval, clock)
        self._lock = threading.Lock()
        self._done = 0
        self._failed = 0
        self._t0: float | None = None
        self._closed = False
        self._sample: tuple[float, int] | None = None  # (clock, finished) where the current rate window began
        self._pending: tuple[float, int] | None = None  # (clock, finished) of the newest result
        self._smoothed: float | None = None
        self._renderer: Renderer | None = None

    # -- Contract 8 -------------------------------------------------------------------------
    def on_start(self, total: int | None) -> None:
        with self._lock:
            if total is not None:
                if total < 0:
                    raise ValueError(f"total must be >= 0, got {total!r}")
                self.total = total
            renderer, snap = self._started_locked(), self._snapshot_locked()
        renderer.render(snap)

    def on_result(self, index: int, ok: bool) -> None:
        with self._lock:
            if ok:
                self._done += 1
            else:
                self._failed += 1
            self._measure()
            if not self._throttle.ready():
                return
            renderer, snap = self._started_locked(), self._snapshot_locked()  # on_start may have been skipped
        renderer.render(snap)

    def on_close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            renderer, snap = self._started_locked(), self._snapshot_locked()
        renderer.close(snap)

    def _started_locked(self) -> Renderer:
        """The renderer, made (and the clock started) on the first call."""
        if self._t0 is None:
            self._t0 = self._clock()
        if self._renderer is None:
            self._renderer = self._make_renderer()
        return self._renderer

    # -- conveniences ---------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        self.on_start(self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        self.on_close()

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return self._snapshot_locked()

    def __repr__(self) -> str:
        return f"<Progress {self.snapshot().meter()}>"

    @property
    def widget(self) -> object | None:
        """The ipywidgets container when rendering as a widget (for tests and layout)."""
        return getattr(self._renderer, "box", None)

    # -- internals ------------------------------------------------------------------------------
    #: weight of the newest rate window in the smoothed rate (tqdm's ``smoothing``)
    SMOOTHING = 0.3
    #: seconds a rate window spans at least, after the first estimate (results arriving in bursts,
    #: or steps of uneven length, do not swing the ETA)
    WINDOW = 5.0
    #: seconds the first rate window spans at least
    FIRST_WINDOW = 1.0

    def _measure(self) -> None:
        """Note the newest result. Results that arrive at one instant (a poll seeing three steps)
        are folded into the rate together, once the clock has moved on."""
        now, finished = self._clock(), self._done + self._failed
        pending = self._pending
        if pending is not None and now > pending[0]:
            self._sample, self._smoothed = self._folded(pending)
        self._pending = (now, finished)

    def _folded(self, point: tuple[float, int]) -> tuple[tuple[float, int] | None, float | None]:
        """(window start, smoothed rate) once the results counted at ``point`` are taken in. The
        clock starts at the first result, so start-up time (loading a model) never counts."""
        sample, smoothed = self._sample, self._smoothed
        if sample is None:
            return point, smoothed
        (t0, n0), (t, n) = sample, point
        if t - t0 < (self.WINDOW if smoothed is not None else self.FIRST_WINDOW):
            return sample, smoothed  # (two polls a moment apart would make a rate of thousands a second)
        rate = (n - n0) / (t - t0)
        a = self.SMOOTHING
        return point, rate if smoothed is None else a * rate + (1 - a) * smoothed

    def _snapshot_locked(self) -> ProgressSnapshot:
        elapsed = 0.0 if self._t0 is None else self._clock() - self._t0
        smoothed = self._smoothed if self._pending is None else self._folded(self._pending)[1]
        return ProgressSnapshot(self.desc, self.total, self._done, self._failed, elapsed, self._closed, smoothed)

    def _make_renderer(self) -> Renderer:
        mode = self.mode
        if mode == "auto":
            mode = "widget" if in_notebook_kernel() else "text"
        if mode == "widget":
            factory = widget_factory()
            if factory is not None:
                return factory(self.desc)
            log.debug("no widget renderer; showing text progress")
            mode = "text"
        if mode == "text":
            return TextRenderer(self._stream)
        return _NullRenderer()


def make_progress(progress: ProgressArg, *, desc: str = "batch") -> ProgressCallback | None:
    """Resolve a ``progress=`` argument: ``None`` (the default) -> a bar only inside a notebook
    kernel, ``True`` -> a :class:`Progress` anywhere (text outside notebooks), ``False`` -> ``None``."""
    if progress is None:
        return Progress(desc=desc) if in_notebook_kernel() else None
    if progress is False:
        return None
    if progress is True:
        return Progress(desc=desc)
    if isinstance(progress, ProgressCallback):
        return progress
    raise TypeError("progress must be a bool or an object with on_start(total), on_result(index, ok) and on_close()")

"""Contract 8 progress: counters, throttling, text mode and widget mode."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import threading

import pytest

from qfnb.notebook.widgets.progress import Progress, ProgressCallback, ProgressSnapshot, make_progress
from tests.fakes.clock import VirtualTime


def test_import_does_not_pull_in_a_frontend() -> None:
    code = "import sys, qfnb.notebook.widgets.progress; print('IPython' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_snapshot_meter_rate_eta() -> None:
    snap = ProgressSnapshot("batch", 100, 41, 1, 4.2, smoothed_rate=10.0)
    assert snap.finished == 42 and snap.rate == pytest.approx(10.0) and snap.eta == pytest.approx(5.8)
    assert snap.meter() == "batch: 42/100 (41 ok, 1 failed) 42% [00:04<00:06, 10.00it/s]"
    assert ProgressSnapshot("b", None, 0, 0, 0.0).meter() == "b: 0/? (0 ok, 0 failed) [00:00<?, ?it/s]"


def test_text_mode_is_throttled_and_final_line_always_written() -> None:
    clock, stream = VirtualTime(100.0), io.StringIO()
    bar = Progress(desc="emb", mode="text", stream=stream, clock=clock)
    bar.on_start(1000)
    for i in range(1000):
        clock.now += 0.001  # 1000 results in 1 s
        bar.on_result(i, ok=i % 100 != 0)
    bar.on_close()
    bar.on_close()  # idempotent
    lines = stream.getvalue().splitlines()
    assert len(lines) <= 3, "not a line per result (non-tty: one line per 5 s + final)"
    assert lines[-1] == "emb: 1000/1000 (990 ok, 10 failed) 100% [00:01, 1000.00it/s]"
    assert bar.snapshot().done == 990 and bar.snapshot().failed == 10


def test_tty_mode_redraws_with_carriage_return() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock, stream = VirtualTime(100.0), Tty()
    bar = Progress(desc="x", mode="text", stream=stream, clock=clock, min_interval=0.2)
    bar.on_start(10)
    for i in range(10):
        clock.now += 0.1
        bar.on_result(i, ok=True)
    bar.on_close()
    frames = stream.getvalue().split("\r")[1:]
    assert 5 <= len(frames) <= 8  # start + every 0.2 s of 1 s + final
    assert frames[-1].endswith("x: 10/10 (10 ok, 0 failed) 100%|████████████████████| [00:01, 10.00it/s]\n")


def test_thread_safe_counts() -> None:
    bar = Progress(mode="off")
    bar.on_start(8000)

    def work(k: int) -> None:
        for i in range(1000):
            bar.on_result(i, ok=(i + k) % 2 == 0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.on_close()
    snap = bar.snapshot()
    assert (snap.done, snap.failed, snap.closed) == (4000, 4000, True)


def test_make_progress_resolution() -> None:
    assert make_progress(None) is None and make_progress(False) is None
    bar = make_progress(True, desc="chat")
    assert isinstance(bar, Progress) and bar.desc == "chat"
    custom = Progress(mode="off")
    assert make_progress(custom) is custom
    assert isinstance(custom, ProgressCallback)
    with pytest.raises(TypeError, match="on_start"):
        make_progress("yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        Progress(mode="fancy")  # type: ignore[arg-type]


def test_default_shows_a_bar_only_inside_a_notebook_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import qfnb._core.runtime.progress as progress_mod

    assert make_progress(None) is None  # a script or a terminal IPython: silent by default
    monkeypatch.setattr(progress_mod, "in_notebook_kernel", lambda: True)
    bar = make_progress(None, desc="chat")
    assert isinstance(bar, Progress) and bar.desc == "chat"
    assert make_progress(False) is None  # an explicit False stays off in a notebook too


def test_widget_mode_updates_traits_and_final_text(ip, pub) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualTime(100.0)
    bar = Progress(total=4, desc="batch", mode="widget", clock=clock)
    with bar:
        for i in range(4):
            clock.now += 0.5
            bar.on_result(i, ok=i != 2)
    box = bar.widget
    assert box is not None
    assert box.bar.value == 1.0 and box.bar.bar_style == "warning"  # one failed
    assert "3 ok, 1 failed" in box.meter.value
    ids = pub.by_display_id()
    (outputs,) = ids.values()
    assert outputs[-1]["update"] and outputs[-1]["data"]["text/plain"].startswith("batch: 4/4 (3 ok, 1 failed)")
    assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]
    # finished: the widget's output becomes a static bar (saved notebooks need no kernel or CDN)
    final = outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in final
    assert 'class="qfnb-progress-static"' in final["text/html"] and "3 ok, 1 failed" in final["text/html"]


def test_widget_mode_incomplete_is_red(ip, pub) -> None:  # type: ignore[no-untyped-def]
    bar = Progress(total=10, mode="widget")
    bar.on_start(10)
    bar.on_result(0, ok=True)
    bar.on_close()
    assert bar.widget.bar.bar_style == "danger"  # type: ignore[attr-defined]


def test_a_widget_bar_whichever_module_came_first() -> None:
    """In a fresh process that never imported qfnb.notebook (a kernel before %load_ext), a widget
    bar still draws as the notebook's widget: the package root plugs it in."""

    code = ("import sys; from qfnb._core.runtime import progress as p; "
            "before = any(m.startswith('qfnb.notebook') for m in sys.modules); "
            "bar = p.Progress(total=2, mode='widget'); bar.on_start(2); "
            "print(before, type(bar._renderer).__name__, type(bar._renderer).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1].split() == ["False", "WidgetRenderer", "qfnb.notebook.widgets.progress_bar"]


def test_terminal_bar_is_tqdm_style() -> None:
    snap = ProgressSnapshot("embed", 8, 3, 1, 2.0, smoothed_rate=2.0)
    assert snap.meter(8) == "embed: 4/8 (3 ok, 1 failed) 50%|████    | [00:02<00:02, 2.00it/s]"
    assert "|" not in ProgressSnapshot("x", None, 1, 0, 1.0).meter(8)


def test_eta_is_smoothed_and_counts_measured_steps_only() -> None:
    """A 60-step job: 100 s of model loading before step 1, then steps of 2 s with jitter. The ETA
    never counts the loading and moves smoothly (the review saw 33:55 -> 15:20 -> 27:20 -> 7:21)."""
    clock = VirtualTime(100.0)
    bar = Progress(total=60, desc="fine-tune", mode="off", clock=clock)
    bar.on_start(60)
    clock.now += 100.0  # loading: no result yet
    etas = []
    for step in range(60):
        clock.now += 2.0 + (0.8 if step % 3 == 0 else -0.4)  # 2 s a step on average, jittery
        bar.on_result(step, True)
        etas.append(bar.snapshot().eta)
    assert etas[0] is None  # one result measures no step time
    measured = [e for e in etas[2:50] if e is not None]
    left = [2.0 * (60 - n) for n in range(3, 51)]
    assert all(abs(e - want) <= 0.25 * want for e, want in zip(measured, left, strict=True))  # within 25%
    # no jumps: one update moves the ETA by at most 10% of the time left
    assert all(abs(b - a) <= 0.1 * a for a, b in itertools.pairwise(measured)), measured

"""The progress protocol lives in the core; the notebook plugs its widget in through a hook."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from qfnb._core import plugins
from qfnb._core.runtime import progress as core


def test_importing_the_core_progress_imports_no_notebook_layer() -> None:
    code = ("import sys, qfnb._core.runtime.progress; "
            "print(sorted(m for m in sys.modules if m.startswith(('qfnb.notebook', 'IPython', 'ipywidgets'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_widget_mode_without_a_registered_renderer_draws_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "widget_renderer", None)
    stream = io.StringIO()
    with core.Progress(total=2, desc="b", mode="widget", stream=stream) as bar:
        bar.on_result(0, True)
        bar.on_result(1, False)
    assert "1 ok, 1 failed" in stream.getvalue()


def test_the_registered_renderer_draws_widget_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[str, int]] = []

    class Recorder:
        def __init__(self, desc: str) -> None:
            self.desc = desc

        def render(self, snap: core.ProgressSnapshot) -> None:
            drawn.append(("render", snap.finished))

        def close(self, snap: core.ProgressSnapshot) -> None:
            drawn.append(("close", snap.finished))

    monkeypatch.setattr(plugins, "widget_renderer", Recorder)
    with core.Progress(total=1, mode="widget", min_interval=0.0) as bar:
        bar.on_result(0, True)
    assert drawn == [("render", 0), ("render", 1), ("close", 1)]


def test_the_package_root_plugs_in_the_notebook_widget_without_importing_the_notebook() -> None:
    code = ("import sys, qfnb._core.runtime.progress as p; f = p.widget_factory(); "
            "print(f.__module__, f.__name__, any(m.startswith('qfnb.notebook') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["qfnb", "_notebook_widget_renderer", "False"]

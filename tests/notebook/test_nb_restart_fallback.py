"""Widgets cut short by a kernel restart: what their old output shows.

While a job or a batch runs, its live widget output also carries its current state as static
HTML (for viewers without a widget manager), refreshed on status / phase changes and at an
interval; and the widget carries CSS that, once ipywidgets marks its views disconnected (the
kernel restarted), hides the broken-link icons and dead buttons and shows a line saying so.
The browser test (``test_nb_browser_restart.py``) checks the CSS in JupyterLab.
"""

from __future__ import annotations

from typing import Any

import pytest
from nb_doubles import FakeEvent, RecordingPublisher

from qfnb.notebook.render import theme
from qfnb.notebook.training.dashboard import TrainingDashboard
from qfnb.notebook.widgets import progress_bar
from qfnb.notebook.widgets.progress import Progress
from tests.fakes.clock import VirtualTime

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def running(step: int, **extra: object) -> FakeEvent:
    data = {"taskId": "task-7", "runStatus": "Running", "currentStep": step, "totalSteps": 100,
            "lossCurve": [[s, 3.0 / s] for s in range(1, step + 1)], **extra}
    return FakeEvent("TrainAction", "t", "Running", "", data)


def test_live_dashboard_output_carries_its_state_as_html(ip, pub: RecordingPublisher) -> None:
    clock = VirtualTime(100.0)
    dash = TrainingDashboard("Gemma ← qa.jsonl", text_interval=0.0, chart_interval=0.0, fallback_interval=20.0,
                             clock=clock).show()
    (first,) = pub.by_display_id()[dash.handle.display_id]
    assert WIDGET_VIEW in first["data"] and "qfnb-dashboard-static" in first["data"]["text/html"]
    dash.handle_event(running(1, phase="loading the base model's weights"))
    clock.now += 1
    dash.handle_event(running(2))  # same phase, within the interval: no republish
    outputs = pub.by_display_id()[dash.handle.display_id]
    assert len(outputs) == 2, "a status/phase change republishes the output (widget + HTML) once"
    update = outputs[-1]
    assert update["update"] and WIDGET_VIEW in update["data"]
    html = update["data"]["text/html"]
    assert "running" in html and "%qftrain --attach task-7" in html and "data:image/png;base64," in html
    assert "step 1/100" in update["data"]["text/plain"] and "step 1/100" in html
    clock.now += 25  # the interval: the fallback follows the steps
    dash.handle_event(running(40))
    outputs = pub.by_display_id()[dash.handle.display_id]
    assert len(outputs) == 3 and "step 40/100" in outputs[-1]["data"]["text/html"]
    dash.finish("succeeded")
    final = pub.by_display_id()[dash.handle.display_id][-1]
    assert WIDGET_VIEW not in final["data"], "a finished job is static HTML only"


def test_after_a_restart_the_old_dashboard_reads_as_its_last_state(ip) -> None:
    dash = TrainingDashboard("Gemma ← qa.jsonl", text_interval=0.0)
    assert {"qfnb-dashboard", "qfnb-live"} <= set(dash._dom_classes)
    buttons = dash.children[4]
    assert dash.stop_button in buttons.children and "qfnb-live-only" in buttons._dom_classes
    dash.handle_event(running(3))
    note = dash.offline.value
    assert theme.OFFLINE_CSS in note and "the kernel restarted" in note
    assert "%qftrain --attach task-7" in note
    # the live hint hides with its separator (no dangling "task … ·" once disconnected)
    assert '<code>task-7</code><span class="qfnb-live-only"> · after a kernel restart' in dash.result.value
    css = theme.OFFLINE_CSS  # keyed on ipywidgets' own class for a view whose kernel went away
    assert ".qfnb-live .jupyter-widgets-disconnected::before" in css and "content:none" in css
    assert ".qfnb-live.jupyter-widgets-disconnected .qfnb-live-only{display:none" in css
    assert ".qfnb-offline-note{display:none}" in css


def widget_bar(pub: Any, results: int) -> tuple[Progress, list[dict[str, Any]]]:
    """A widget bar of 10 items after ``results`` of them came back, half a second apart, and what
    it published."""
    clock = VirtualTime(100.0)
    bar = Progress(total=10, desc="batch", mode="widget", clock=clock)
    bar.on_start(10)
    for i in range(results):
        clock.now += 0.5
        bar.on_result(i, ok=True)
    return bar, list(next(iter(pub.by_display_id().values())))


def test_a_bar_republishes_its_first_count_then_at_an_interval(ip, pub) -> None:  # type: ignore[no-untyped-def]
    _, outputs = widget_bar(pub, results=5)
    live = [o["data"]["text/html"] for o in outputs[1:] if WIDGET_VIEW in o["data"]]
    assert len(live) == 1 and "0/10" in live[0], live  # a bar cut short early still shows its count


def test_running_bar_output_carries_its_state_as_html(ip, pub, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(progress_bar, "FALLBACK_INTERVAL", 0.0)
    bar, outputs = widget_bar(pub, results=3)
    assert WIDGET_VIEW in outputs[0]["data"] and "<b>batch</b>" in outputs[0]["data"]["text/html"]
    live = [o for o in outputs[1:] if WIDGET_VIEW in o["data"]]
    assert live and "3/10" in live[-1]["data"]["text/html"] and "qfnb-progress-static" in live[-1]["data"]["text/html"]
    assert {"qfnb-progress", "qfnb-live"} <= set(bar.widget._dom_classes)  # type: ignore[attr-defined]
    assert theme.OFFLINE_CSS in bar.widget.children[-1].value  # type: ignore[attr-defined]
    bar.on_close()
    final = next(iter(pub.by_display_id().values()))[-1]["data"]
    assert WIDGET_VIEW not in final and "3/10" in final["text/html"]


def test_launcher_form_has_a_static_fallback_and_keeps_its_output(ip, pub: RecordingPublisher) -> None:
    from nb_doubles import FakeTrainer

    from qfnb.notebook.training.launcher import FinetuneLauncher

    launcher = FinetuneLauncher(factory=lambda s, h: FakeTrainer(s, h, steps=5), base_models=("Gemma-3-270M",)).show()
    launcher.dataset.value = "my data.jsonl"
    (first,) = pub.by_display_id()[launcher.handle.display_id]
    assert WIDGET_VIEW in first["data"] and "qfnb-launcher-static" in first["data"]["text/html"]
    assert "%qftrain --base Gemma-3-270M --dataset 'my data.jsonl' --epochs 1" in launcher.command()
    assert {"qfnb-launcher", "qfnb-live"} <= set(launcher._dom_classes)
    launcher.launch_button.click()
    assert launcher.dashboard.wait(timeout=10).status == "succeeded"
    outputs = pub.by_display_id()[launcher.handle.display_id]
    live = [o["data"] for o in outputs[1:] if WIDGET_VIEW in o["data"]]
    # a phase change republishes the *form's* output (with the job's state as HTML), not the bare dashboard
    assert all(d[WIDGET_VIEW]["model_id"] == launcher.model_id for d in live)
    assert all("qfnb-dashboard-static" in d["text/html"] for d in live)
    # succeeded, Deploy to do: the form's widget stays beside the final static state
    assert "qfnb-dashboard-static" in outputs[-1]["data"]["text/html"]
    assert outputs[-1]["data"][WIDGET_VIEW]["model_id"] == launcher.model_id


def test_a_launch_keeps_its_command_line_and_the_cell_shows_it_after_a_restart(
        ip, pub: RecordingPublisher, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nb_doubles import FakeTrainer

    from qfnb.notebook.training import launcher as launcher_mod
    from qfnb.notebook.training.launcher import FinetuneLauncher

    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(launcher_mod, "_cell_id", "cell-7")  # what pre_run_cell saw (JupyterLab's cell id)
    form = FinetuneLauncher(factory=lambda s, h: FakeTrainer(s, h, steps=5), base_models=("Gemma-3-270M",)).show()
    assert form.previous is None and "launched from this cell" not in form.message.value
    form.dataset.value, form.name.value, form.steps.value, form.deploy.value = "tickets.csv", "tickets", 16, True
    form.launch_button.click()
    assert form.dashboard.wait(timeout=10).status == "succeeded"
    command = form.dashboard.launched_as
    assert command == form.command() and "--dataset tickets.csv --name tickets" in command
    assert "--steps 16" in command and command.endswith("--deploy")
    final = pub.by_display_id()[form.handle.display_id][-1]["data"]
    assert final["text/plain"].startswith(f"launched as: {command}\n")  # the saved notebook: both
    assert "launched as: <code" in final["text/html"] and "qfnb-dashboard-static" in final["text/html"]
    # Restart & Run All: the cell's new form says what it launched
    again = FinetuneLauncher(factory=lambda s, h: FakeTrainer(s, h, steps=5), base_models=("Gemma-3-270M",))
    assert again.previous is not None and again.previous["command"] == command
    assert "launched from this cell" in again.message.value and "--name tickets" in again.message.value
    assert "launched from this cell" in again._repr_mimebundle_()["text/html"]
    # ... as a static record: no form and no live Launch button until "New launch" is asked for
    assert again.form.layout.display == "none" and again.new_launch.layout.display is None
    assert "needs a running kernel" not in again._repr_mimebundle_()["text/html"]
    assert again._repr_mimebundle_()["text/plain"].startswith("[qftrain launcher] launched from this cell at")
    again.new_launch.click()
    assert again.form.layout.display is None and again.new_launch.layout.display == "none"


def test_the_form_defaults_to_the_notebook_folders_data_never_the_demo(
        ip, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qfnb.notebook.training.launcher import FinetuneLauncher

    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    empty = FinetuneLauncher(base_models=("Gemma-3-270M",))
    assert empty.dataset.value == "" and any(o.startswith("/") for o in empty.dataset.options)  # demo: an option
    assert empty.form.layout.display is None and empty.new_launch.layout.display == "none"
    (tmp_path / "tickets.jsonl").write_text("{}\n")
    assert FinetuneLauncher(base_models=("Gemma-3-270M",)).dataset.value == "tickets.jsonl"


def test_the_form_offers_every_format_dataset_load_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qfnb.notebook.training.launcher import dataset_choices

    for name in ("a.jsonl", "b.csv", "c.json", "d.txt", "sub/e.csv", "notes.md", ".ipynb_checkpoints/f.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found = [c for c in dataset_choices(tmp_path) if not c.startswith("/")]  # the bundled demo is absolute
    assert found == ["a.jsonl", "b.csv", "c.json", "d.txt", "sub/e.csv"]

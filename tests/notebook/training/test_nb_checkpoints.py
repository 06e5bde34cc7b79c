"""The training dashboard with checkpoints: the marks, the best one, the over-fitting named, the
Deploy button saying which checkpoint it deploys, and a held-out file named ``*_heldout``."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qfnb.notebook.render import charts
from qfnb.notebook.training.attach import attach
from qfnb.notebook.training.dashboard_html import loss_chart
from qfnb.notebook.training.run import held_out_file

SAVED: list[dict[str, Any]] = [{"step": s, "trainLoss": t, "evalLoss": e, "time": "2026-11-25T07:00:00Z"}
         for s, t, e in ((8, 3.1, 3.9), (16, 1.2, 3.2), (24, 0.5, 4.4), (32, 0.2, 5.6), (40, 0.08, 6.8))]


def _detail(status: str = "Done") -> dict[str, object]:
    return {"taskId": "task-c", "jobName": "helpdesk-faq", "model": "Gemma-3-270M", "runStatus": status,
            "currentStep": 40, "totalSteps": 40, "lossCurve": [[i, 5.24 / i] for i in range(1, 41)],
            "evalLossCurve": [[c["step"], c["evalLoss"]] for c in SAVED], "checkpointList": SAVED,
            "bestCheckpoint": 16}


def test_dashboard_names_the_best_checkpoint_and_the_over_fitting() -> None:
    dash = attach("task-c", fetch=lambda t: _detail(), stop=lambda t: None, show=False, deployment=None)
    state = dash.wait(timeout=5)
    assert state.best is not None and state.best["step"] == 16
    text = state.checkpoint_text()
    assert text == ("best checkpoint: step 16, of 5 saved (held-out loss 3.200) · "
                    "over-fitting since step 16: held-out loss 3.2 → 6.8")
    assert "over-fitting since step 16" in dash._result_html() and text in state.summary()
    assert dash.deploy_button.description == "Deploy best (step 16)"
    assert state.title.startswith("helpdesk-faq · ")  # the launch name first, the id beside it


def test_the_chart_draws_checkpoints_best_and_the_over_fit_region() -> None:
    from PIL import Image

    loss = [(i, 5.24 / i) for i in range(1, 41)]
    plain = charts.loss_chart(loss, eval_points=[(c["step"], c["evalLoss"]) for c in SAVED])
    marked = charts.loss_chart(loss, eval_points=[(c["step"], c["evalLoss"]) for c in SAVED],
                               checkpoints=[(c["step"], c["evalLoss"]) for c in SAVED], best=16, overfit_since=16)
    assert marked.startswith(b"\x89PNG") and marked != plain
    # the legend sits outside the plot: the figure is wider than the axes' area by the legend's width
    assert Image.open(io.BytesIO(marked)).size[0] > Image.open(io.BytesIO(charts.loss_chart(loss))).size[0]
    one = charts.loss_chart([(1, 2.0)], eval_points=[(1, 2.5)])  # a single point: integer ticks, no 1.002
    assert one.startswith(b"\x89PNG")


def _drawn_x_ticks(monkeypatch: pytest.MonkeyPatch, draw: Callable[[], bytes]) -> list[tuple[float, str]]:
    """The x ticks (value, label) of the chart ``draw`` renders, read from its Axes once it is drawn."""
    figures: list[Any] = []
    render = charts._png

    def keep(fig: Any) -> bytes:
        png = render(fig)  # drawn: the tick labels are set
        figures.append(fig)
        return png

    monkeypatch.setattr(charts, "_png", keep)
    assert draw().startswith(b"\x89PNG")
    ax = figures[-1].axes[0]
    low, high = ax.get_xlim()
    return [(float(t.get_position()[0]), t.get_text()) for t in ax.get_xticklabels()
            if low <= t.get_position()[0] <= high]


def test_the_chart_x_axis_reads_whole_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # the dashboard of a one-step run, a held-out loss at the same step: one tick, "1"
    detail = {**_detail(), "currentStep": 1, "totalSteps": 1, "lossCurve": [[1, 2.0]], "evalLossCurve": [[1, 2.5]],
              "checkpointList": [], "bestCheckpoint": None}
    dash = attach("task-c", fetch=lambda t: detail, stop=lambda t: None, show=False, deployment=None)
    dash.wait(timeout=5)
    assert _drawn_x_ticks(monkeypatch, functools.partial(loss_chart, dash.state)) == [(1.0, "1")]
    # two or a few steps: whole numbers only (not 1.0, 1.2, 1.4, …)
    for steps in ([1, 2], [3, 4, 5], list(range(1, 41))):
        ticks = _drawn_x_ticks(monkeypatch, functools.partial(charts.loss_chart, [(i, 1.0 / i) for i in steps]))
        assert ticks and all(v.is_integer() and label == str(int(v)) for v, label in ticks), ticks
        assert {min(steps), max(steps)} <= {int(v) for v, _ in ticks} or len(steps) > 5


def test_a_held_out_file_named_heldout_is_recognised(tmp_path: Path) -> None:
    train = tmp_path / "helpdesk.jsonl"
    train.write_text("{}\n")
    (tmp_path / "helpdesk_heldout.jsonl").write_text("{}\n")
    assert held_out_file(str(train)) == str(tmp_path / "helpdesk_heldout.jsonl")


def test_a_preference_runs_dashboard_charts_its_held_out_accuracy_and_picks_the_best_by_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    saved = [{**c, "valid_preference_accuracy": a, "valid_reward_margin": m}
             for c, a, m in zip(SAVED, (0.5, 0.75, 1.0, 1.0, 0.75), (0.1, 0.4, 0.9, 1.3, 1.1), strict=True)]
    detail = {**_detail(), "checkpointList": saved, "bestCheckpoint": 24}
    state = attach("task-c", fetch=lambda t: detail, stop=lambda t: None, show=False, deployment=None).wait(timeout=5)
    assert state.held_out_score == ("held-out preference accuracy", [(8, 0.5), (16, 0.75), (24, 1.0), (32, 1.0),
                                                                    (40, 0.75)])
    # a tie on accuracy (steps 24 and 32): the lower held-out loss, not the wider margin
    assert state.checkpoint_text().startswith("best checkpoint: step 24, of 5 saved (held-out preference accuracy "
                                              "1.000, reward margin +0.900)")
    figures: list[Any] = []
    render = charts._png
    monkeypatch.setattr(charts, "_png", lambda fig: figures.append(fig) or render(fig))
    assert loss_chart(state).startswith(b"\x89PNG")
    right = figures[-1].axes[1]  # the score's own axis, beside the loss
    assert right.get_ylabel() == "held-out preference accuracy" and list(right.lines[0].get_ydata()) == [
        0.5, 0.75, 1.0, 1.0, 0.75]


def _answered(step: int, answer: str, reason: str, degenerate: bool) -> dict[str, Any]:
    return {"step": step, "evalLoss": 0.4, "valid_preference_accuracy": 1.0, "time": "2026-11-25T07:00:00Z",
            "valid_degeneration_rate": 1.0 if degenerate else 0.0, "degenerate": degenerate,
            "degeneration": "the same answer to 4 of 4 prompts: '[Ticket #1111]'" if degenerate else "0 of 4",
            "answers": [{"prompt": "My order is late <b>again</b>", "base": "Sorry to hear that.",
                         "answer": answer, "reason": reason}]}


def test_the_dashboard_shows_held_out_answers_beside_the_base_and_the_collapse() -> None:
    saved = [_answered(8, "Sorry! We are on it. [Ticket #2041]", "", False),
             _answered(16, "[Ticket #1111]Ticket #1111<script>alert(1)</script>", "'ticket' repeated 3x", True)]
    collapse = {"step": 16, "rate": 1.0, "seen": "the same answer to 4 of 4 prompts: '[Ticket #1111]'",
                "example": "[Ticket #1111]", "lastGoodStep": 8, "time": "2026-11-25T07:00:00Z"}
    detail = {**_detail(), "currentStep": 16, "totalSteps": 40, "checkpointList": saved, "collapse": collapse,
              "bestCheckpoint": 8}
    dash = attach("task-c", fetch=lambda t: detail, stop=lambda t: None, show=False, deployment=None)
    state = dash.wait(timeout=5)
    assert state.best is not None and state.best["step"] == 8  # never the degenerate one
    html = dash.snapshot_html(chart=b"png")
    assert "qfnb-answers" in html and "Sorry to hear that." in html and "Sorry! We are on it. [Ticket #2041]" in html
    assert html.count("qfnb-degenerate") == 1 and "⚠ degenerate: the same answer to 4 of 4 prompts" in html
    # the model's text is escaped, never markup: no script, the prompt's tags shown as text
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "My order is late &lt;b&gt;again&lt;/b&gt;" in html
    assert "qfnb-collapse" in html and "answers collapsed at step 16" in html
    assert "the model is step 8&#x27;s checkpoint" in html or "the model is step 8's checkpoint" in html
    assert "answers collapsed at step 16" in state.summary()
    assert dash.deploy_button.description == "Deploy best (step 8)"
    assert any("answers collapsed at step 16" in line for line in state.log)


def test_a_collapse_read_on_training_prompts_says_so_and_that_nothing_is_served() -> None:
    """A run without held-out data: the worker read its final answers to training prompts (``prompts``:
    ``"training"``); the dashboard and the job's warning event say where the answers were read, and that no
    checkpoint is served."""
    from qfnb.local.domain.training.openai_fine_tuning import collapse_message

    collapse = {"step": 10, "rate": 1.0, "seen": "the same answer to 6 of 8 prompts: '抱歉说不难。[Ticket #11011]'",
                "example": None, "lastGoodStep": None, "prompts": "training", "time": "2026-11-30T09:00:00Z"}
    detail = {**_detail(), "currentStep": 10, "totalSteps": 10, "collapse": collapse}
    state = attach("task-t", fetch=lambda t: detail, stop=lambda t: None, show=False, deployment=None).wait(timeout=5)
    assert "answers to training prompts collapsed at step 10: the same answer to 6 of 8" in state.summary()
    assert "no held-out data, so no checkpoint to serve" in state.summary()
    said = collapse_message(collapse)
    assert said.startswith("The model's answers to its training prompts collapsed at step 10: the same answer")
    assert "no held-out data was given" in said


def test_a_model_served_no_better_than_its_base_is_marked_on_the_dashboard() -> None:
    """The task detail's ``servedUnjudged`` (the worker's: most held-out answers degenerated, not held against the
    run as all of the base's had): the result row and the log say the served model answers no better than its base."""
    unjudged = {"step": 2, "rate": 1.0, "seen": "8 of 8 answers degenerate, e.g. '抱歉<b>给您</b>带来困惑！…'"}
    detail = {**_detail(), "currentStep": 8, "totalSteps": 8, "servedUnjudged": unjudged}
    dash = attach("task-u", fetch=lambda t: detail, stop=lambda t: None, show=False, deployment=None)
    state = dash.wait(timeout=5)
    said = "the served model (step 2) answers no better than its base, whose answers degenerated too: 8 of 8"
    assert said in state.summary() and any(said in line for line in state.log)
    html = dash.snapshot_html(chart=b"png")
    assert "qfnb-unjudged" in html and "read its answers before using it" in html
    assert "<b>" not in html.split("qfnb-unjudged", 1)[1].split("</span>", 1)[0]  # the model's text escaped

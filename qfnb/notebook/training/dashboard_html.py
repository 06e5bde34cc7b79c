"""A fine-tune's state as the dashboard draws it: the header, the result row with its next steps, the
loss chart, and the static HTML that stands in for the live widget (in a saved notebook, an export,
or after a kernel restart). Functions of :class:`~qfnb.notebook.training.state.TrainingState` and of
what the dashboard says beside it (the launched line, the next steps): the live widget and its static
snapshot draw the same."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from qfnb.notebook.render import charts, theme
from qfnb.notebook.training.state import TrainingState
from qfnb.protocol.console import checkpoints as ckpt
from qfnb.resources.safe_html import clean, escape

__all__ = ["TRAINING_FILE_WARNING", "answers_html", "header_html", "loss_chart", "offline_html", "result_html",
           "snapshot_html"]

#: under a "next:" that evaluates on the training file
TRAINING_FILE_WARNING = ("that %qfeval scores the training file: the model has seen those rows, so the scores "
                         "flatter it; evaluate on rows kept out of training (a file beside it named *_test, "
                         "*_eval or *_valid is picked up)")


def loss_chart(st: TrainingState) -> bytes:
    """The loss chart: both curves, the checkpoints, the best one and the over-fit region; a RFT run's
    reward per step, its moving mean and the checkpoints' held-out reward beside them."""
    best, over = st.best, st.overfit
    marks = [(int(c["step"]), float(c["evalLoss"])) for c in st.checkpoints if c.get("evalLoss") is not None]
    rewards = charts.Rewards(st.reward, st.reward_mean, st.eval_reward) if st.reward else None
    return charts.loss_chart(st.loss, title=f"loss · {st.title}", eval_points=st.eval_loss, checkpoints=marks,
                             best=None if best is None else int(best["step"]),
                             overfit_since=None if over is None else over.since, score=st.held_out_score,
                             rewards=rewards)


def offline_html(st: TrainingState) -> str:
    """What a live widget shows once its kernel has restarted (CSS reveals it then)."""
    task = st.task_id
    follow = (f' · the job goes on: <code style="user-select:all">%qftrain --attach {escape(task)}</code>'
              if task else "")  # the same command as the dashboard's hints while the job runs
    return theme.offline_note(f"the kernel restarted: this is the last state it showed "
                              f"({escape(st.as_of().split(',')[0])}){follow}")


def _launched_html(launched_as: str | None) -> str:
    if not launched_as:
        return ""
    return (f'<div class="qfnb-launched" style="color:{theme.TEXT_MUTED}">launched as: <code style="color:'
            f'{theme.TEXT};user-select:all">{escape(launched_as)}</code></div>')


def header_html(st: TrainingState, launched_as: str | None) -> str:
    """The launched line (when a form launched the job), the title, the status badge and the phase."""
    doing = f' <span style="color:{theme.TEXT_MUTED}">· {escape(st.doing)}</span>' if st.doing else ""
    return (f'{_launched_html(launched_as)}<span style="color:{theme.TEXT}"><b>{escape(st.title)}</b></span> '
            f"{theme.badge(st.status)}{doing}")


def result_html(st: TrainingState, hints: Sequence[str], *, live: bool, eval_is_training: bool) -> str:
    """The result row and, once the job has ended (``live`` False), its next steps: ``hints``, with a
    warning when the %qfeval among them scores the training file."""
    rows = [_field_html(st, label, value, restart_hint=hints[0] if live and hints else None)
            for label, value in st.result_fields()]
    html = f'<span style="color:{theme.TEXT}">{" · ".join(rows)}</span>' + answers_html(st)
    steps = [] if live else list(hints)
    if steps:
        code = "\n".join(steps)
        html += (f'<div style="color:{theme.TEXT_MUTED};margin-top:4px">next:</div>'
                 f'<pre class="qfnb-next" style="color:{theme.TEXT};background:var(--jp-layout-color2,#eee);'
                 f'padding:4px 8px;margin:2px 0;user-select:all;font-family:var(--jp-code-font-family,monospace)">'
                 f'{escape(code)}</pre>')
        if eval_is_training and not st.held_out and any(s.startswith("%qfeval") for s in steps):
            html += (f'<div class="qfnb-warning" style="color:{theme.ERROR}">⚠ {escape(TRAINING_FILE_WARNING)}'
                     "</div>")
    return html


def _field_html(st: TrainingState, label: str, value: str, *, restart_hint: str | None) -> str:
    """One of the state's result_fields() as the result row shows it (``restart_hint``: how to follow a
    running job after a kernel restart)."""
    if label == "task":
        row = f"task <code>{escape(value)}</code>"
        if restart_hint is not None:  # the job outlives this kernel: say how to find it
            row += (f'<span class="qfnb-live-only"> · after a kernel restart: <code style="user-select:all">'
                    f"{escape(restart_hint)}</code></span>")
        return row
    if label == "reused":
        return (f'<span class="qfnb-reused" style="color:{theme.TEXT_MUTED}">↺ reused finished run '
                f"<code>{escape(value)}</code> (same recipe) · <code>--fresh</code> trains again</span>")
    if label == "checkpoints":
        color = theme.ERROR if st.overfit is not None else theme.TEXT
        return f'<span class="qfnb-checkpoints" style="color:{color}">{escape(value)}</span>'
    if label == "error":
        return f'<span style="color:{theme.ERROR}">error: {escape(value)}</span>'
    if label in ("collapse", "unjudged"):
        return f'<span class="qfnb-{label}" style="color:{theme.ERROR}">⚠ {escape(value)}</span>'
    return f"{label} <code>{escape(value)}</code>"  # model, endpoint


def answers_html(st: TrainingState) -> str:
    """A few held-out answers of each checkpoint beside the base's, a degenerate checkpoint marked (``""`` when the
    run's checkpoints carry no answers). Model text is untrusted: every piece is escaped."""
    judged = [c for c in st.checkpoints if c.get("answers")]
    if not judged:
        return ""
    cell = "padding:2px 6px;vertical-align:top;text-align:left;border-top:1px solid var(--jp-border-color2,#ddd)"
    rows = []
    for c in judged:
        bad = c.get(ckpt.DEGENERATE) is True
        rate = c.get(ckpt.DEGENERATION_RATE)
        mark = (f'<span class="qfnb-degenerate" style="color:{theme.ERROR}">⚠ degenerate: '
                f'{escape(str(c.get("degeneration") or ""))}</span>' if bad else "answers")
        said = f" · {float(rate):.0%} degenerate" if isinstance(rate, int | float) else ""
        for n, a in enumerate(c["answers"]):
            reason = str(a.get("reason") or "")
            style = f"{cell};color:{theme.ERROR}" if reason else cell
            step = f"step {int(c['step'])}{said}<br/>{mark}" if n == 0 else ""
            rows.append(f'<tr><td style="{cell}">{step}</td>'
                        f'<td style="{cell};color:{theme.TEXT_MUTED}">{escape(str(a.get("prompt", "")))}</td>'
                        f'<td style="{cell}">{escape(str(a.get("base", "")))}</td>'
                        f'<td style="{style}">{escape(str(a.get("answer", "")))}</td>'
                        f'<td style="{cell};color:{theme.TEXT_MUTED}">{escape(reason)}</td></tr>')
    head = "".join(f'<th style="{cell}">{h}</th>'
                   for h in ("checkpoint", "prompt", "the base's answer", "its answer", "why degenerate"))
    flagged = sum(c.get(ckpt.DEGENERATE) is True for c in judged)
    summary = (f"held-out answers: the base beside each checkpoint ({flagged} of {len(judged)} degenerate)"
               if flagged else "held-out answers: the base beside each checkpoint")
    return (f'<details class="qfnb-answers"{" open" if flagged else ""}><summary>{summary}</summary>'
            f'<table style="border-collapse:collapse;font-size:90%"><tr>{head}</tr>{"".join(rows)}</table></details>')


def snapshot_html(st: TrainingState, *, chart: bytes, header: str, result: str) -> str:
    """The state as static HTML (what replaces the widget when the job ends): ``chart`` a PNG,
    ``header`` and ``result`` as :func:`header_html` and :func:`result_html` drew them."""
    png = base64.b64encode(chart).decode()
    log = escape("\n".join(st.log))
    return clean(
        f'<div class="qfnb-train-summary qfnb-dashboard-static" style="color:{theme.TEXT};'
        f'border-left:4px solid {theme.STATUS.get(st.status, theme.STATUS["pending"])};padding-left:8px">'
        f"{header}<div>{escape(st.progress_text())}</div>{_as_of_html(st)}"
        f'<img alt="loss chart" src="data:image/png;base64,{png}"/>'
        f"<details><summary>event log</summary><pre>{log}</pre></details>{result}</div>"
    )


def _as_of_html(st: TrainingState) -> str:
    """When the static state was true: a running job's snapshot says it is not live, and how to see
    where the job is now (a saved notebook or an export keeps it after the kernel is gone)."""
    task = st.task_id
    now = (f' · where the job is now: <code style="user-select:all">%qftrain --attach {escape(task)}</code>'
           if task and not st.finished else "")
    return (f'<div class="qfnb-as-of" style="color:{theme.TEXT_MUTED};font-size:90%">'
            f"{escape(st.as_of())}{now}</div>")

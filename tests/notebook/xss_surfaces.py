"""Every HTML view of qfnb, fed untrusted text: what tests/notebook/render/test_nb_xss.py checks statically
and test_nb_browser_xss.py shows in JupyterLab (live, then exported with nbconvert).

``SURFACES[name](text)`` builds the view the way the product does (its own objects and renderers)
with ``text`` in every field a model, a dataset or an error can fill, and returns what a cell would
display: an object with ``_repr_html_``/``_repr_mimebundle_`` or a widget.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

PAYLOADS_FILE = Path(__file__).parent / "data" / "xss_payloads.txt"


def payloads() -> list[str]:
    """The corpus: one payload a line (``⏎`` a newline), comments left out."""
    lines = PAYLOADS_FILE.read_text(encoding="utf-8").splitlines()
    return [ln.replace("⏎", "\n") for ln in lines if ln.strip() and not ln.startswith("# ")]


class Shown:
    """A product renderer's HTML as a displayable object (``display(Shown(html))``)."""

    def __init__(self, html: str, plain: str = "") -> None:
        self.html, self.plain = html, plain

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.plain or "(html)", "text/html": self.html}


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""
    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def chat_single(text: str) -> Any:
    from qfnb.notebook.chat.answer import CellAnswer

    return CellAnswer(model=text, text=text, done=True, context=text,
                      usage={"total_tokens": 3, "prompt_tokens": 1, "completion_tokens": 2})


def chat_streaming(text: str) -> Any:
    from qfnb.notebook.chat.answer import CellAnswer

    return CellAnswer(model=text, text=text, done=False)


def chat_columns(text: str) -> Any:
    from qfnb.notebook.chat.answer import CellAnswer, render_answers

    answers = [CellAnswer(model=text, text=text, done=True, error=RuntimeError(text)),
               CellAnswer(model="b", text=text, done=True)]
    data, _ = render_answers(answers)
    return Shown(data["text/html"], data["text/plain"])


def _tools_cell(text: str, *, pending: bool) -> Any:
    from qfnb.agents import ToolLoop, ToolRun
    from qfnb.notebook.chat.answer import CellAnswer, CellChatRequest
    from qfnb.notebook.chat.tools import NotebookStep, ToolsCell

    step = NotebookStep(backend=None, request=CellChatRequest(messages=[]))  # type: ignore[arg-type]
    loop = ToolLoop(step, {}, [])
    loop.calls = [ToolRun(name=text, arguments=text, result=text, status="ran"),
                  ToolRun(name="f", arguments=f'{{"x": {text!r}}}', result=None, status="failed")]
    if pending:
        loop.calls.append(ToolRun(name=text, arguments=text, status="asked"))
    else:
        loop.done, loop.stopped = True, text
    step.answer = CellAnswer(model=text, text=text, done=True, error=RuntimeError(text))
    return ToolsCell(loop, step)


def tools_yes(text: str) -> Any:
    from qfnb.notebook.chat.tools import render

    page, plain = render(_tools_cell(text, pending=False))
    return Shown(page, plain)


def tools_form(text: str) -> Any:
    from qfnb.notebook.chat.tools import ToolsView

    return ToolsView(_tools_cell(text, pending=True), lambda _cell: None)


def chat_history(text: str) -> Any:
    from qfnb.notebook.chat.sessions import ChatSession, SessionHistory

    call = {"id": "c1", "type": "function", "function": {"name": text, "arguments": text}}
    return SessionHistory(ChatSession.from_messages(text, [
        {"role": "user", "content": text}, {"role": "assistant", "content": text, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "name": text, "content": text}, {"role": text, "content": text}]))


def models_list(text: str) -> Any:
    from qfnb.notebook.models.discovery import ModelList, ModelRow

    return ModelList([ModelRow(kind="chat", name=text, served_by=text, default=True)], source=text)


def _eval_samples(text: str, models: tuple[str, ...] = ("base", "tuned")) -> pd.DataFrame:
    rows = []
    for m, model in enumerate(models):
        for i in range(4):
            rows.append({"llm": model, "index": i, "input": f"{text} {i}", "reference": text,
                         "output": text if i % 2 else f"{text} {model}", "error": text if i == 3 else None,
                         "rouge_l": 0.2 * i + 0.1 * m})
    return pd.DataFrame(rows)


def eval_result(text: str) -> Any:
    from qfnb.evaluation import EvaluationResult

    return EvaluationResult({text: {"rouge_l": 0.3}, "tuned": {"rouge_l": 0.4}},
                            _eval_samples(text, (text, "tuned")), task_id=text, state=text)


def eval_comparison(text: str) -> Any:
    from qfnb.evaluation import EvaluationResult

    result = EvaluationResult({"base": {"rouge_l": 0.3}, text: {"rouge_l": 0.5}}, _eval_samples(text, ("base", text)))
    return result.compare(text, "base")


def eval_stability(text: str) -> Any:
    from qfnb.evaluation import EvaluationResult

    frame = pd.concat([_eval_samples(text, (text,)).assign(repeat=r) for r in range(2)], ignore_index=True)
    return EvaluationResult({text: {"rouge_l": 0.3}}, frame).stability()


def eval_report(text: str) -> Any:
    from qfnb.evaluation import EvaluationResult
    from qfnb.notebook.evaluation.report import EvalReport

    samples = _eval_samples(text, ("base", text))
    runs = {"base": EvaluationResult({"base": {"rouge_l": 0.3}}, samples[samples.llm == "base"]),
            text: EvaluationResult({text: {"rouge_l": 0.5}}, samples[samples.llm == text])}
    report = EvalReport.from_value(runs)
    report.judge_notes = _judge_notes(text)  # the judge verdict report's lines
    return report


def _judge_notes(text: str) -> list[str]:
    """A judge check's sentences (its bold verdict first) for a judge and a model named ``text``."""
    from qfnb.evaluation import EvaluationResult
    from qfnb.evaluation.stats.judge_check import check_judge

    rows = pd.DataFrame([{"llm": text, "index": i, "judge_score": 5.0} for i in range(12)])
    result = EvaluationResult({text: {"judge_score": 5.0}}, rows)
    result.judges = [{"metric": "judge_score", "judge": text, "scale": [0, 5]}]
    return list(check_judge(result, {text: {i: float(i % 2) * 5 for i in range(12)}}, metric="judge_score").sentences)


def eval_plan(text: str) -> Any:
    from qfnb.evaluation import Plan
    from qfnb.notebook.evaluation.plan import PlanReport

    plan = Plan(n_items=40, min_difference=0.1, power=0.8, alpha=0.05, sd=0.2, n_pilot=20, pilot_difference=0.05,
                n_items_upper=50, metric=text, models=(text, text), assumptions=[text])
    return PlanReport([plan], pilot_items=20, dataset_items=30, line=f"--models {text} --plan 0.1", metric=text)


def _forecast(text: str) -> Any:
    from qfnb.resources.forecast_result import Forecast

    return Forecast(model=text, platform=text, calls=3, input_tokens=40, input_source=text, output_expected=30,
                    output_low=20, output_high=48, output_source=text, yuan_expected=0.01, yuan_high=0.02,
                    price_source=text, eta_s=5.0, eta_low_s=3.0, eta_high_s=8.0, speed_source=text,
                    assumptions=(text,), asked=text)


def forecast(text: str) -> Any:
    return _forecast(text)


def forecast_check(text: str) -> Any:
    from qfnb.resources.forecast_result import ForecastCheck

    return ForecastCheck(_forecast(text), prompt_tokens=40, completion_tokens=28, seconds=6.0, calls=3, replayed=1)


def train_forecast(text: str) -> Any:
    from qfnb.trainer.spend.forecast import TrainForecast

    return TrainForecast(base=text, platform=text, rows=10, trained_rows=8, steps=4, tokens=48, token_source=text,
                         seconds=3.0, speed_source=text, yuan=None, price_source=text)


def eval_plan_run(text: str) -> Any:
    """A report with its plan's full-run button (what ``%qfeval --plan`` shows in a kernel)."""
    from qfnb.notebook.evaluation.plan import FullRun

    report = eval_report(text)
    report.plan = eval_plan(text)
    report.runner = FullRun(f"%qfeval --models {text} --sample 40", lambda line: None)
    return report


def dataset(text: str) -> Any:
    from qfnb.dataset import Dataset

    return Dataset.create_from_pyobj([{"prompt": text, "response": text, text: 1}])


def dataset_insight(text: str) -> Any:
    from qfnb.dataset import Dataset

    rows = [{"prompt": text, "response": text}, {"prompt": "b", "response": text}]
    return Dataset.create_from_pyobj(rows).show_in_data_insight_mode()


def dataset_insight_view(text: str) -> Any:
    from qfnb.notebook.data.insight import insight_html

    return Shown(insight_html(dataset_insight(text)))


def _stress(text: str) -> Any:
    from qfnb.dataset.llm.stress import RequestSample, RoundStats, StressTestResult

    samples = (RequestSample(0.0, 0.1, 0.5, 10), RequestSample(0.1, None, 0.2, 0, error=text))
    return StressTestResult(text, [RoundStats(2, 1.0, samples)], stopped=text)


def stress_result(text: str) -> Any:
    return _stress(text)


def stress_view(text: str) -> Any:
    from qfnb.notebook.data.stress import stress_html

    return Shown(stress_html(_stress(text)))


def images(text: str) -> Any:
    from qfnb.notebook.chat.images import ImageResult

    return ImageResult([tiny_png(), tiny_png()], prompt=text, model=text)


def no_image_engine(text: str) -> Any:
    from qfnb.notebook.chat.images import NoImageEngine

    return NoImageEngine(model=text)


def batch_bar(text: str) -> Any:
    from qfnb.notebook.data.batch import progress_html
    from qfnb.resources.batch_job import JobState

    state = JobState(task_id=text, name=text, status="Running", done=1, failed=1, total=4, output_tokens=9,
                     run_seconds=1.0, view={"finishTime": text})
    return Shown(progress_html(state, note=text))


def progress_widget(text: str) -> Any:
    from qfnb._core.runtime.progress import ProgressSnapshot
    from qfnb.notebook.widgets.progress_bar import ProgressBox, static_html

    box = ProgressBox(text)
    box.static = static_html(ProgressSnapshot(text, 4, 2, 1, 1.0), final=False, note=text)
    return box


def progress_static(text: str) -> Any:
    from qfnb._core.runtime.progress import ProgressSnapshot
    from qfnb.notebook.widgets.progress_bar import static_html

    return Shown(static_html(ProgressSnapshot(text, 4, 2, 1, 1.0, closed=True), note=text))


def dashboard(text: str) -> Any:
    from qfnb.notebook.training.dashboard import TrainingDashboard

    dash = TrainingDashboard(title=text)
    st = dash.state
    st.log.append(text)
    st.phase = st.platform_phase = st.task_id = st.model_id = st.model_name = st.reused = text
    dash.launched_as = dash.var_name = text
    dash.finish("failed", error=text)
    return dash


def launcher(text: str) -> Any:
    from qfnb.notebook.training.launcher import FinetuneLauncher

    form = FinetuneLauncher(base_models=(text, "b"))
    for child in _walk(form):
        if type(child).__name__ in ("Text", "Combobox") and hasattr(child, "value"):
            child.value = text
    return form


def usage_chart(text: str) -> Any:
    from qfnb.notebook.ledger.usage import chart_html

    table = pd.DataFrame({"prompt_tokens": [3], "completion_tokens": [4], "trained_tokens": [0],
                          "saved_tokens": [1]}, index=[text])
    return Shown(chart_html(table, text))


def trace_view(text: str) -> Any:
    from qfnb.notebook.ledger.traces import TraceView
    from qfnb.protocol.platform.traces import CallSpan

    span = CallSpan(trace_id=text, span_id=text, parent_id=text, operation=text, route=text, model=text, status=200,
                    started=1.0, duration_s=0.5, ttft_s=0.1, input_tokens=3, output_tokens=4, session=text, cell=1,
                    job=text)
    return TraceView((span,), scope=text)


def preference_comparison(text: str) -> Any:
    from qfnb.evaluation.runs.preference import AnsweredPair, PairScore, PreferenceComparison, Wins
    from qfnb.evaluation.runs.preference_answers import Answers
    from qfnb.protocol.console.degeneration import judge_answers

    pairs = [PairScore(text, 0.1, 0.9), PairScore(text, 0.4, 0.2)]
    said = [text, f"{text} {text} {text} {text}"]  # the second one degenerate: its reason quotes the text
    answers = Answers(said, [None, "length"], judge_answers(said, finish_reasons=[None, "length"]))
    answered = [AnsweredPair(text, a, text, answers.degenerate(k), False, None, None, 0.5, text)
                for k, a in enumerate(said)]
    return PreferenceComparison(tuned=text, base=text, answers=answered,
                                by_answers=Wins.of(text, [a.outcome for a in answered], 0.95),
                                tuned_answers=answers, base_answers=answers, pairs=pairs,
                                likelihood=Wins.of(text, [p.win for p in pairs], 0.95), extra={text: text})


def usage_table(text: str) -> Any:
    from qfnb.notebook.ledger.usage_view import UsageTable

    table = pd.DataFrame({"target": [text], "calls": [1], "prompt_tokens": [3], "completion_tokens": [4],
                          "cost_yuan": [0.0], "real_time_yuan": [0.0], "cache_hits": [0], "price": [text]},
                         index=pd.Index([text], name=text))
    return UsageTable(table)


SURFACES: dict[str, Callable[[str], Any]] = {
    f.__name__: f for f in (
        chat_single, chat_streaming, chat_columns, tools_yes, tools_form, chat_history, models_list, eval_result,
        eval_comparison, eval_stability, eval_report, eval_plan, dataset, dataset_insight,
        dataset_insight_view, stress_result, stress_view, images, no_image_engine, batch_bar, progress_widget,
        progress_static, dashboard, launcher, usage_chart, forecast, forecast_check, train_forecast, eval_plan_run,
        trace_view, preference_comparison, usage_table,
    )
}


def _walk(widget: Any) -> Iterator[Any]:
    """``widget`` and the widgets inside it (a view object's through its ``box``)."""
    yield widget
    for child in getattr(widget, "children", None) or ([widget.box] if hasattr(widget, "box") else []):
        yield from _walk(child)


def html_of(shown: Any) -> list[str]:
    """Every HTML string ``shown`` puts on a page: its mimebundle's or ``_repr_html_``'s, and each
    HTML widget's value inside it (what the widget front end sets as ``innerHTML``)."""
    out: list[str] = []
    bundle = getattr(shown, "_repr_mimebundle_", None)
    if bundle is not None:
        data = bundle()
        data = data[0] if isinstance(data, tuple) else data
        out += [v for k, v in (data or {}).items() if k in ("text/html", "text/markdown") and isinstance(v, str)]
    if hasattr(shown, "_repr_html_"):
        found = shown._repr_html_()
        out += [found] if isinstance(found, str) else []
    for child in _walk(shown):
        if type(child).__name__ in ("HTML", "SafeHTML", "HTMLMath"):
            out.append(child.value)
        if getattr(child, "description_allow_html", False):
            out.append(str(child.description))
    return out


def types_of(shown: Any) -> set[str]:
    """The qualified names of the classes ``shown`` is made of (itself and its widget children)."""
    return {f"{type(c).__module__}.{type(c).__qualname__}" for c in _walk(shown)}


def show_all(text: str) -> None:
    """Display every surface with ``text`` in it (a browser test's notebook cell)."""
    from IPython.display import display

    for name, build in SURFACES.items():
        display(Shown(f"<h6>{name}</h6>"))
        display(build(text))


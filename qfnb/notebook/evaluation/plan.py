"""``%qfeval ... --compare BASE --plan MIN_DIFF``: a pilot (or a stored result), the sample-size plan,
the forecast of what the full run adds to the pilot, and the line (or, in a kernel, the button) that
runs it (glue over :func:`qfnb.evaluation.plan_comparison` and :func:`qfnb.forecast`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from qfnb.evaluation import Plan, plan_comparison
from qfnb.evaluation.stats.plan import NO_SPREAD
from qfnb.notebook import forecasts
from qfnb.notebook._ipython import HTML, display
from qfnb.notebook.arguments import EvalArgs
from qfnb.notebook.evaluation import run as evalrun
from qfnb.notebook.evaluation.options import EvalArgsError, reason
from qfnb.notebook.evaluation.run import EvalPlan, min_difference, sample_rows
from qfnb.notebook.render import theme as _theme
from qfnb.notebook.render._ipywidgets import VBox
from qfnb.resources.forecast_result import Forecast
from qfnb.resources.safe_html import escape

if TYPE_CHECKING:  # pragma: no cover
    from IPython.core.interactiveshell import InteractiveShell

#: items in a pilot when ``--limit`` does not say
PILOT_ITEMS = 20


def plans(result: Any, baseline: str, metric: str, diff: float) -> tuple[list[Plan], list[str]]:
    """Each other model of ``result`` against ``baseline`` on ``metric``, and a note for each pair the
    pilot scored the same difference on every item (identical answers: nothing to plan from, left out)."""
    out, skipped = [], []
    for tag in result.llm_tags:
        if tag == baseline:
            continue
        try:
            out.append(plan_comparison(result, metric, min_difference=diff, a=tag, b=baseline))
        except ValueError as exc:
            if NO_SPREAD in str(exc):
                skipped.append(f"{tag} vs {baseline} left out: {reason(exc)}")
                continue
            raise EvalArgsError(f"--plan: {tag} vs {baseline} on {metric}: {reason(exc)}") from None
    if not out:
        raise EvalArgsError(f"--plan on {metric}: no pair to plan from ({'; '.join(skipped) or 'no other model'})")
    return out, skipped


@dataclass(frozen=True)
class Pilot:
    """A ``--plan`` run: the pilot's size and the whole data set's, and the difference to detect."""

    min_difference: float

    def report(self, result: Any, plan: EvalPlan, line: str) -> PlanReport:
        """The plan from the pilot's result, on the first metric asked."""
        shown = plan.chart_metrics[0]
        column = next(c for c, name in plan.columns.items() if name == shown)
        found, skipped = plans(result, plan.compare or "", column, self.min_difference)
        report = PlanReport(found, pilot_items=len(plan.frame), dataset_items=plan.rows_available, line=line,
                            metric=shown, skipped=skipped)
        report.full_run = forecast_full_run(plan, report.n_items)
        return report


@dataclass(frozen=True)
class FullRunForecast:
    """What the plan's full run adds to the pilot: the forecasts of its items (the answers the
    answer store holds, the pilot's, are no calls), and a note per model that cannot be forecast."""

    new_items: int
    reused_items: int
    forecasts: tuple[Forecast, ...]
    notes: tuple[str, ...]

    @property
    def heading(self) -> str:
        if not self.new_items:
            return f"The full run asks nothing new: the pilot's {self.reused_items} items are all it needs."
        return (f"The full run adds {self.new_items:,} items to the pilot's {self.reused_items:,}; forecast of "
                "its calls (answers the answer store holds are none):")

    def lines(self) -> list[str]:
        return [self.heading, *(repr(f) for f in self.forecasts), *(f"  ({n})" for n in self.notes)]

    def to_html(self) -> str:
        notes = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        return (f'<div class="qfnb-plan-forecast"><p>{escape(self.heading)}</p>'
                + "".join(f._repr_html_() for f in self.forecasts)
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


def forecast_full_run(plan: EvalPlan, n_items: int) -> FullRunForecast:
    """The forecast of the plan's full-run line (its items drawn as :func:`full_run_line` draws them:
    one permutation, so the pilot's items are among them, and their answers, in the answer store,
    are no calls; without a store, ``--fresh``, they are asked again and counted)."""
    rows = plan.population if plan.population is not None else plan.frame
    wanted = sample_rows(len(rows), min(n_items, len(rows)))
    pilot = set(sample_rows(len(rows), len(plan.frame)))
    new = [i for i in wanted if i not in pilot]
    if not new:
        return FullRunForecast(0, len(plan.frame), (), ())
    try:
        found, notes = forecasts.eval_forecasts(plan.llms, [rows["input"].iloc[i] for i in wanted],
                                                max_tokens=plan.sampling.max_output_tokens, repeats=plan.repeats,
                                                batch=plan.batch, params=plan.sampling.fields(), store=plan.store)
    except Exception as exc:  # the plan stands without its forecast: say why there is none
        return FullRunForecast(len(new), len(plan.frame), (), (f"no forecast: {type(exc).__name__}: {exc}",))
    return FullRunForecast(len(new), len(plan.frame), tuple(found), tuple(notes))


def prepare(args: EvalArgs, namespace: Mapping[str, Any]) -> tuple[EvalPlan, Pilot | None]:
    """The checked run of ``%qfeval``; with ``--plan``, a pilot of ``--sample`` (or ``--limit``) items,
    default :data:`PILOT_ITEMS`, drawn at random from the whole data set."""
    if args.plan is None:
        return evalrun.plan(args, namespace), None
    diff = min_difference(args.plan, "--plan")
    args = replace(args, sample=args.sample or args.limit or PILOT_ITEMS, limit=None)
    plan = evalrun.plan(args, namespace)
    if plan.compare is None or plan.sequential:
        raise EvalArgsError("--plan needs --compare BASE (and plans a fixed-n run: no --sequential)")
    if len(plan.frame) < 3:
        raise EvalArgsError(f"--plan: a pilot needs at least 3 items, the data set gives {len(plan.frame)}")
    return plan, Pilot(diff)


def full_run_line(line: str, n_items: int, rows: int | None) -> str:
    """The same ``%qfeval`` line without ``--plan``, on ``n_items`` drawn as the pilot's were (``--sample``:
    the pilot's items among them, so their answers are reused); all ``rows`` when it needs them all."""
    words = f" {line} "
    for option in ("--plan", "--limit", "--sample"):
        words = re.sub(rf"\s{option}(\s+|=)\S+", " ", words)
    sample = f" --sample {n_items}" if rows is None or n_items < rows else ""
    return f"%qfeval {' '.join(words.split())}{sample}"


class PlanReport:
    """The plan(s), their assumptions, and the line to run next."""

    def __init__(self, plans: Sequence[Plan], *, pilot_items: int, dataset_items: int | None, line: str | None,
                 metric: str, skipped: Sequence[str] = ()) -> None:
        self.plans = list(plans)
        #: the pairs left out (identical on every pilot item), said under the plans
        self.skipped = list(skipped)
        self.pilot_items, self.dataset_items, self.metric = pilot_items, dataset_items, metric
        self.n_items = max(p.n_items for p in self.plans)
        available = dataset_items if dataset_items is not None else self.n_items
        self.next_line = (full_run_line(line, min(self.n_items, available), dataset_items)
                          if line is not None else None)
        #: what the full run adds to the pilot, forecast (a pilot's report; a stored result's has none)
        self.full_run: FullRunForecast | None = None

    @property
    def sentences(self) -> list[str]:
        out = [p.sentence for p in self.plans] + self.skipped
        if self.dataset_items is not None and self.n_items > self.dataset_items:
            worst = min(p.power_at(self.dataset_items) for p in self.plans)
            out.append(f"The data set has only {self.dataset_items} items: with all of them the power is "
                       f"{worst:.0%}. Add items, or plan for a larger difference.")
        return out

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self.to_html()}

    def to_html(self) -> str:
        muted = f"color:{_theme.TEXT_MUTED}"
        items = "".join(f"<li>{escape(s)}</li>" for s in self.sentences)
        notes = "".join(f"<li>{escape(a)}</li>" for a in self.plans[0].assumptions)
        wrap = "white-space:pre-wrap;overflow-wrap:anywhere"  # a long line wraps, not widens the report
        run = (f'<p>Full run: <code class="qfnb-plan-line" style="{wrap}">{escape(self.next_line)}</code></p>'
               if self.next_line else "")
        if self.full_run is not None:
            run += self.full_run.to_html()
        return (f'<div class="qfnb-plan" style="color:{_theme.TEXT}"><h4>Plan on {escape(self.metric)} '
                f"(pilot: {self.pilot_items} items)</h4><ul>{items}</ul>{run}"
                f'<details style="{muted}"><summary>assumptions</summary><ul>{notes}</ul></details></div>')

    def __repr__(self) -> str:
        lines = [f"Plan on {self.metric} (pilot: {self.pilot_items} items)", *self.sentences]
        if self.next_line:
            lines.append(f"Full run: {self.next_line}")
        if self.full_run is not None:
            lines.extend(self.full_run.lines())
        return "\n".join(lines + [f"  - {a}" for a in self.plans[0].assumptions])


class FullRun:
    """The plan's full run as one click: the report with a button under it that runs the full-run line
    in this kernel; what the run shows stays in the cell, under the button (the line stays for copy)."""

    def __init__(self, line: str, run: Callable[[str], Any]) -> None:
        import ipywidgets  # deferred: the widget exists only in a kernel's display

        self.line, self.run = line, run
        items = re.search(r"--sample (\d+)", line)
        what = f"{items.group(1)} items" if items else "all items"
        self.button = ipywidgets.Button(description=f"Run the full evaluation ({what})", icon="play",
                                        tooltip=line, layout=ipywidgets.Layout(width="auto"))
        self.button.add_class("qfnb-plan-run")
        self.output = ipywidgets.Output()
        self.button.on_click(self._clicked)
        self.view: Any = None

    def _clicked(self, _: Any = None) -> None:
        from IPython.core.getipython import get_ipython  # deferred: a click happens only in a kernel

        self.button.disabled = True
        self.output.clear_output()
        with self.output:
            try:
                shown = self.run(self.line)
                if shown is not None:
                    display(shown)
            except Exception:  # a magic's own one-line error, as the cell would show it
                shell = get_ipython()
                if shell is not None:
                    shell.showtraceback()
            finally:
                self.button.disabled = False

    def bundle(self, html: str) -> dict[str, Any]:
        """The widget's view beside ``html`` (the report, also the static fallback of a saved notebook)."""
        if self.view is None:
            import ipywidgets  # deferred: as in __init__

            report = ipywidgets.Output()  # an output area: the report lays out as a cell's output does
            report.append_display_data(HTML(html))
            self.view = VBox([report, self.button, self.output])
        return dict(self.view._repr_mimebundle_() or {})


def in_kernel(shell: InteractiveShell | None) -> bool:
    """Whether ``shell`` is a kernel's, where a widget can be shown (a terminal's or a test shell's has no
    ``kernel``)."""
    return shell is not None and getattr(shell, "kernel", None) is not None


def full_run(report: PlanReport, shell: InteractiveShell | None, run_line: Callable[[str], Any]) -> FullRun | None:
    """The button of ``report``'s full run, ``run_line`` in ``shell``'s kernel (a terminal or a test shell,
    which has no ``kernel``, gets the line only)."""
    if not report.next_line or not in_kernel(shell):
        return None
    return FullRun(report.next_line, run_line)

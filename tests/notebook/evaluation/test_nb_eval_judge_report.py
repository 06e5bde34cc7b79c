"""An evaluation report with a judge: the verdict first and in bold, and the judge's 0–5 score charted on
an axis of its own (never beside 0–1 metrics on one axis)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qfnb.evaluation import EvaluationResult
from qfnb.evaluation.stats.judge_check import Use, check_judge
from qfnb.notebook.evaluation.report import EvalReport, judge_scales
from qfnb.notebook.render.charts import metric_figure


def _result() -> EvaluationResult:
    """Two models judged 5 on every item by the judge ``tiny`` (0–5), half of them exact matches."""
    rows = [{"llm": m, "index": i, "input": f"q{i}", "reference": f"r{i}", "output": f"o{i}", "error": "",
             "judge_score": 5.0, "exact_match": float(i % 2)} for m in ("a", "b") for i in range(12)]
    result = EvaluationResult({m: {"exact_match": 0.5, "judge_score": 5.0} for m in ("a", "b")}, pd.DataFrame(rows))
    result.judges = [{"metric": "judge_score", "judge": "tiny", "scale": [0, 5]}]
    return result


def test_a_judge_score_gets_its_own_panel_on_its_own_scale() -> None:
    table = {"exact_match": {"a": 0.5, "b": 0.9}, "rouge": {"a": 0.2, "b": 0.3}, "judge_score": {"a": 4.0, "b": 2.5}}
    fig = metric_figure(table, scales={"judge_score": (0.0, 5.0)})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    shared, judge = axes
    assert [t.get_text() for t in shared.get_xticklabels()] == ["exact_match", "rouge"]
    assert [t.get_text() for t in judge.get_xticklabels()] == ["judge_score"]
    assert judge.get_ylim()[0] == 0.0 and judge.get_ylim()[1] >= 5.0 and "0\u20135 scale" in judge.get_title()
    assert shared.get_ylim()[1] < 1.2  # the 0–1 metrics keep their own axis
    one = metric_figure({"exact_match": {"a": 0.5}})  # without a judge: one panel, as before
    assert len([ax for ax in one.axes if ax.get_visible()]) == 1


def test_the_report_shows_the_verdict_in_bold_and_charts_the_judge_apart() -> None:
    result = _result()
    assert judge_scales(result) == {"judge_score": (0.0, 5.0)}
    assert judge_scales({"run1": result}) == {"judge_score": (0.0, 5.0)}
    report = EvalReport.from_value(result)
    assert report.scales == {"judge_score": (0.0, 5.0)}
    mine = {i: float(i % 2) * 5 for i in range(12)}  # she grades half the answers 0; the judge gives 5 to all
    check = check_judge(result, {"a": mine}, metric="judge_score")
    report.verdicts, report.judge_notes = list(check.verdicts.values()), check.notes
    html = report.to_html()
    verdict = html[html.index('class="qfnb-judge-verdict'):]
    assert verdict.startswith('class="qfnb-judge-verdict qfnb-use-not-at-all"><b>verdict: judge tiny on judge_score '
                              "for a should not be used"), verdict[:200]
    assert "12 of your 12 labels used" in html and html.count("verdict: judge") == 1
    assert repr(report).index("verdict: judge tiny") < repr(report).index("12 of your 12 labels used")
    assert report.verdicts_df[["model", "judge", "metric", "use"]].values.tolist() == [
        ["a", "tiny", "judge_score", Use.NOT_AT_ALL]]
    assert np.isfinite(report.metrics["judge_score"]).all()

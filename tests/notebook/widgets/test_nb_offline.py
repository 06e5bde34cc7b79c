"""Saved notebooks read well without a kernel or a CDN: every widget leaves a static final state.

A notebook with a fine-tune dashboard (FakeTrainer), a batch progress bar and an evaluation
report is executed with nbclient (what ``scripts/tour.sh`` does through nbconvert), and its HTML
export is checked the way the tour's reports in ``artifacts/`` are: no widget view is left that
needs the widget manager to show anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[3]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def widget_views_left(html: str) -> int:
    """Outputs in an nbconvert HTML export that only a live widget manager could draw."""
    return html.count(f'<script type="{WIDGET_VIEW}"')


def test_executed_notebook_keeps_static_dashboard_and_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests" / "notebook")]))
    cells = [
        "%load_ext qfnb\nfrom nb_doubles import FakeTrainer, fake_deployer\n"
        "m = get_ipython().magics_manager.registry['QfnbMagics']\n"
        "m.trainer_factory = lambda spec, h: FakeTrainer(spec, h, steps=10, step_time=0.01)\n"
        "m.deployer = fake_deployer('ep_offline')",
        "%qftrain --dataset demo.jsonl --steps 10 -o run",
        "run.wait(30).status\nrun.deploy().endpoint  # deployed: nothing is left for the widget to do",
        "from qfnb.notebook.widgets.progress import Progress\n"
        "with Progress(total=3, desc='batch', mode='widget') as bar:\n"
        "    for i in range(3):\n        bar.on_result(i, True)",
        "from qfnb.evaluation import EvaluationResult\nimport pandas as pd\n"
        "res = {n: EvaluationResult({'m': {'rouge_l': v}}, pd.DataFrame({'llm': ['m'], 'index': [0], 'input': ['q'],"
        " 'reference': ['a'], 'output': ['o'], 'error': [None], 'rouge_l': [v]}))\n"
        "       for n, v in [('base', .2), ('tuned', .7)]}",
        "%qfeval res",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells], metadata=KERNEL)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    dash_outputs = nb.cells[1].outputs
    assert all(WIDGET_VIEW not in o.get("data", {}) for o in dash_outputs), "the dashboard became static"
    assert any("qfnb-dashboard-static" in o.get("data", {}).get("text/html", "") for o in dash_outputs)
    bar = nb.cells[3].outputs
    assert bar and all(WIDGET_VIEW not in o.get("data", {}) for o in bar)
    assert "qfnb-progress-static" in bar[0]["data"]["text/html"]
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert widget_views_left(html) == 0
    for needle in ("qfnb-dashboard-static", "qfnb-progress-static", "qfnb-eval-report", "data:image/png;base64,"):
        assert needle in html, needle


@pytest.mark.parametrize("report", sorted((ROOT / "artifacts").glob("*.html")), ids=lambda p: p.name)
def test_tour_html_reports_have_static_fallbacks(report: Path) -> None:
    """The reports ``scripts/tour.sh`` wrote (when it has run here): nothing waits for a widget."""
    html = report.read_text(encoding="utf-8")
    assert widget_views_left(html) == 0, f"{report.name} has outputs only a live widget manager can show"


def test_the_check_sees_a_widget_left_behind() -> None:
    from nbformat.v4 import new_output

    view = {WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0}, "text/plain": "IntSlider()"}
    cell = new_code_cell("w", outputs=[new_output("display_data", data=view)])
    model = {"model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls",
             "model_module_version": "2.0.0", "state": {}}
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": model}, "version_major": 2,
                                                            "version_minor": 0}}  # what nbclient saves
    html, _ = HTMLExporter().from_notebook_node(new_notebook(cells=[cell], metadata={**KERNEL, "widgets": state}))
    assert widget_views_left(html) == 1

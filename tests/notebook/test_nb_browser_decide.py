"""JupyterLab in headless Chromium, light and dark: the plan, the sequential comparison and the judge
calibration reports of ``%qfeval`` (and the plan's full run, one click), with screenshots in
artifacts/screenshots/ and their text's contrast checked (WCAG AA). The models and the judge are
notebook functions (no model needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser_kit import RUN_ALL_CELLS, low_contrast, set_theme, shot, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

CELLS = [
    "%load_ext qfnb\nimport pandas as pd\n"
    "class Good:\n    def __call__(self, p, **o): n = int(p.split()[2]); return str(n + 1) if n % 10 < 9 else '?'\n"
    "class Bad:\n    def __call__(self, p, **o): n = int(p.split()[2]); return str(n + 1) if n % 10 < 3 else '?'\n"
    "good, bad = Good(), Bad()\n"
    "def kind_judge(prompt, **options):  # a wrong answer is '?': one more in the prompt\n"
    "    if 'what is 5 + 1' in prompt or 'what is 15 + 1' in prompt: raise TimeoutError('judge timed out')\n"
    "    return '评分: 5' if prompt.count('?') == 1 else '评分: 2'\n"
    "df = pd.DataFrame({'prompt': [f'what is {i} + 1?' for i in range(150)],"
    " 'response': [str(i + 1) for i in range(150)],"
    " 'mine_good': [4 if i % 10 < 9 else 1 for i in range(20)] + [None] * 130,"
    " 'mine_bad': [1 if i % 10 < 3 else 4 for i in range(20)] + [None] * 130})",  # she disagrees on bad
    "%qfeval --models good,bad --dataset df --metrics exact_match --compare bad --plan 0.2 --limit 16 -o pilot",
    "%qfeval --models good,bad --dataset df --metrics exact_match --compare bad --sequential 0.2",
    "%qfeval --models good,bad --dataset df --metrics exact_match --limit 40 --judge kind_judge "
    "--calibrate good=mine_good,bad=mine_bad --compare bad",
]


@pytest.mark.parametrize("theme", [pytest.param("light", marks=pytest.mark.slow), "dark"])
def test_plan_sequential_and_calibration_reports(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    name = f"decide_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1200, height=1400) as page:
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_selector(".qfnb-judge-check", timeout=120_000)
        page.wait_for_timeout(1000)
        page.locator(".qfnb-plan summary").first.click()  # open the assumptions
        shot(page, ".qfnb-plan", f"eval_plan_{theme}.png")
        shot(page, ".qfnb-sequential", f"eval_sequential_{theme}.png")
        shot(page, ".qfnb-judge-check", f"eval_calibration_{theme}.png")
        shot(page, ".qfnb-eval-chart", f"eval_judge_chart_{theme}.png")
        # the plan's full run as one click: the same kernel runs the line; its report stays under the button
        page.locator("button.qfnb-plan-run").first.click()
        ran = "button.qfnb-plan-run ~ .widget-output .qfnb-eval-report"  # the run's report, under its button
        page.wait_for_selector(ran, timeout=120_000)
        page.wait_for_timeout(500)
        shot(page, ran, f"eval_plan_full_run_{theme}.png")
        button = page.locator("button.qfnb-plan-run").first.inner_text()
        full_run = page.locator(ran).first.inner_text()
        plan = page.locator(".qfnb-plan").first.inner_text()
        seq = page.locator(".qfnb-sequential").inner_text()
        judge = page.locator(".qfnb-judge-check").inner_text()
        low = [*low_contrast(page, ".qfnb-plan li, .qfnb-plan p, .qfnb-plan h4"),
               *low_contrast(page, ".qfnb-sequential p, .qfnb-sequential h4"),
               *low_contrast(page, ".qfnb-judge-check li, .qfnb-judge-verdict")]
    assert "paired items detect a difference of 0.2" in plan and "%qfeval --models good,bad" in plan, plan
    assert "Run the full evaluation" in button, button
    assert "Evaluation — 2 model(s)" in full_run and "answers reused" in full_run, full_run
    assert "decided after" in seq and "calls saved" in seq and "good beats bad on exact_match" in seq, seq
    assert "judge kind_judge on judge_score vs your labels of good" in judge and "calibrated" in judge, judge
    # planted: the judge tracks her labels of good and contradicts those of bad; two of its calls failed
    assert "verdict: judge kind_judge on judge_score for good can be used per item" in judge, judge
    assert "verdict: judge kind_judge on judge_score for bad should not be used" in judge, judge
    assert "good: 18 of your 20 labels used; 2 dropped because the judge's call failed" in judge, judge
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

"""JupyterLab in headless Chromium, light and dark: the forecast tables of ``%qfeval --forecast`` and
``%qfbatch --forecast`` (before the first call) and the run beside each forecast when it ends, with
screenshots in artifacts/screenshots/ (forecast_*.png) and their text's contrast checked (WCAG AA).
The runs go to a data dir's daemon with paced engine doubles; a small evaluation first records
answers, so the forecast has an expected output and a range."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser_kit import RUN_ALL_CELLS, SHOTS, low_contrast, set_theme, write_notebook
from test_nb_browser import open_lab_page
from test_nb_browser_batch_eval import batch_lab  # noqa: F401  (the daemon with paced engines, and its Lab)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

CELLS = [
    "%load_ext qfnb\nimport pandas as pd\n"
    "prompts = [f'Explain topic {i} briefly' for i in range(8)]\n"
    "df = pd.DataFrame({'prompt': prompts, 'response': [f'Tiny-Chat: {p}' for p in prompts]})",
    "%qfeval --models Tiny-Chat --dataset df --limit 4 --metrics exact_match --max-tokens 16",  # recorded answers
    "%qfeval --models Tiny-Chat --dataset df --metrics exact_match --max-tokens 16 --forecast --fresh",
    "ds = %qfbatch prompts -m Tiny-Chat --max-tokens 16 --forecast",
]


@pytest.mark.parametrize("theme", [pytest.param("light", marks=pytest.mark.slow), "dark"])
def test_forecast_tables_before_and_beside_the_run(batch_lab: tuple[str, Path, str], theme: str) -> None:  # noqa: F811
    _, root, _ = batch_lab
    name = f"forecast_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(batch_lab, name, width=1200, height=1600) as page:
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_function("() => document.querySelectorAll('.qfnb-forecast-check').length >= 2",
                               timeout=240_000)
        page.wait_for_timeout(1000)
        forecasts, checks = page.locator("table.qfnb-forecast"), page.locator("table.qfnb-forecast-check")
        for loc, shot in ((forecasts.first, "eval"), (forecasts.last, "batch"),
                          (checks.first, "eval_vs_actual"), (checks.last, "batch_vs_actual")):
            loc.scroll_into_view_if_needed()
            loc.screenshot(path=str(SHOTS / f"forecast_{shot}_{theme}.png"))
        eval_fc, batch_fc = forecasts.first.inner_text(), forecasts.last.inner_text()
        eval_vs, batch_vs = checks.first.inner_text(), checks.last.inner_text()
        low = low_contrast(page, "table.qfnb-forecast th, table.qfnb-forecast td, table.qfnb-forecast caption, "
                                 "table.qfnb-forecast-check th, table.qfnb-forecast-check td, "
                                 "table.qfnb-forecast-check caption")
    # the first cell's 4 answers are in the kernel's response cache: known, 0 calls (--fresh asks the store again)
    assert "Forecast: 4 calls to" in eval_fc and "4 of 8 answers known" in eval_fc, eval_fc
    assert "input tokens" in eval_fc and "ETA" in eval_fc, eval_fc
    assert "recorded answers of this model" in eval_fc and "¥0" in eval_fc, eval_fc
    assert "Forecast: 8 calls to" in batch_fc and "upper bound" in batch_fc, batch_fc
    assert "Forecast vs actual (" in eval_vs and "of forecast" in eval_vs, eval_vs
    assert "Forecast vs actual" in batch_vs and "total tokens" in batch_vs, batch_vs
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

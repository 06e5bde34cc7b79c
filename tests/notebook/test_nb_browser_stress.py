"""A stress test's report in JupyterLab (headless Chromium), light and dark theme: the table reads
at WCAG AA contrast and the latency/throughput chart is drawn; screenshots in artifacts/screenshots/.
The rounds are built from request samples (the display is under test, not an engine)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser_kit import CONTRAST_OF, RUN_ALL_CELLS, contrast, set_theme, shot, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

CELLS = [
    "%load_ext qfnb",
    "from qfnb.dataset.llm.stress import RequestSample, RoundStats, StressTestResult\n"
    "def round_of(users):\n"
    "    samples = tuple(RequestSample(0.1 * i, 0.05 * users + 0.01 * i, 1.0 + 0.3 * users + 0.02 * i, 64)\n"
    "                    for i in range(4 * users))\n"
    "    return RoundStats(users, 2.0 + 0.5 * users, samples)\n"
    "StressTestResult('Qwen2.5-Coder-0.5B-Instruct', [round_of(u) for u in (1, 4, 8)])",
]
TABLE = ".qfnb-stress td, .qfnb-stress th"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_stress_report_reads_in_both_themes(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    name = f"stress_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1200, height=900) as page:
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_selector(".qfnb-stress img", timeout=120_000)
        page.wait_for_function("() => document.querySelector('.qfnb-stress img').naturalWidth > 0", timeout=30_000)
        shot(page, ".qfnb-stress", f"stress_report_{theme}.png")
        cells = page.evaluate(CONTRAST_OF, TABLE)
        width = page.evaluate("() => document.querySelector('.qfnb-stress img').naturalWidth")
    assert [c["text"] for c in cells[:3]] == ["users", "requests", "errors"] and len(cells) == 4 * 11
    assert width > 600  # the two panels: latency and throughput
    low = [(c["text"], c["fg"], c["bg"]) for c in cells if contrast(c["fg"], c["bg"]) < 4.5]
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

"""A dataset's data insight in JupyterLab (headless Chromium): drawn once, then read in the light and
the dark theme: every text at WCAG AA contrast, a bar per distribution bin; screenshots in
artifacts/screenshots/ (data_insight_light.png, data_insight_dark.png)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from browser_kit import BACKGROUND_OF, RUN_ALL_CELLS, contrast, set_theme, shot, write_notebook
from test_nb_browser import open_lab_page

from qfnb.dataset import Dataset

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

ROWS = ("rows = [{'prompt': f'Question {i}: ' + 'why is the sky blue? ' * (i % 6 + 1),\n"
        "         'response': '' if i % 7 == 0 else ('Rayleigh scattering.' if i % 2 else 'Because of air.'),\n"
        "         'rating': i % 5 + 1, 'score': round(0.37 * i % 1, 3)} for i in range(60)]\n"
        "insight = Dataset.create_from_pyobj(rows + rows[:3]).show_in_data_insight_mode()")
CELLS = ["%load_ext qfnb", "from qfnb.dataset import Dataset\n" + ROWS + "\ninsight"]
TEXTS = """() => {
  """ + BACKGROUND_OF + """
  const root = document.querySelector('.qfnb-insight');
  const texts = [...root.querySelectorAll('*')].filter(el => [...el.childNodes].some(
    n => n.nodeType === 3 && n.textContent.trim()));
  return texts.map(el => ({text: el.textContent.trim().slice(0, 80), fg: getComputedStyle(el).color, bg: bg(el)}));
}"""
BARS = "() => [...document.querySelectorAll('.qfnb-insight .qfnb-bar')].map(el => el.getBoundingClientRect().width)"


def test_the_data_insight_reads_in_light_and_dark_themes(lab: tuple[str, Path, str]) -> None:
    _, root, _ = lab
    write_notebook(root / "insight.ipynb", CELLS)
    seen: dict[str, list[dict[str, str]]] = {}
    with open_lab_page(lab, "insight.ipynb", width=1200, height=1400) as page:
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_selector(".qfnb-insight .qfnb-dist", timeout=120_000)
        bars = page.evaluate(BARS)
        for theme in ("light", "dark"):
            set_theme(page, theme)
            shot(page, ".qfnb-insight", f"data_insight_{theme}.png")
            seen[theme] = page.evaluate(TEXTS)
    texts = [t["text"] for t in seen["light"]]
    assert "63 rows, 4 columns, 3 duplicate rows" in texts[0]
    assert {"prompt", "response", "rating", "score"} <= set(texts)
    assert "(empty)" in texts  # the responses left empty are a bar of their own
    here: dict[str, Any] = {"Dataset": Dataset}
    exec(ROWS, here)  # the same insight, computed in this process: a bar per bin, drawn when counted
    counts = [n for d in here["insight"].distributions for _, n in d.bars]
    assert len(counts) >= 8 + 3 + 5 + 8 - 2  # prompt lengths, responses (2 and empty), ratings, scores
    assert [w > 0 for w in bars] == [n > 0 for n in counts]
    for theme, found in seen.items():
        low = [(t["text"], t["fg"], t["bg"]) for t in found if contrast(t["fg"], t["bg"]) < 4.5]
        assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"
    assert seen["light"][0]["fg"] != seen["dark"][0]["fg"]  # the text follows the theme

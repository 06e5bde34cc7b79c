"""``%qftrain --mode`` in JupyterLab with headless Chromium, light and dark: the launcher's train-mode
picker shows the data format each mode wants (and follows a change in the page), a dataset in
another mode's format is refused naming its line, and a DPO run's dashboard runs to its end. Training
runs on the notebook doubles; screenshots in artifacts/screenshots/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from browser_kit import RUN_ALL_CELLS, THEMES, contrast, set_theme, shot, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

PAIR = [{"prompt": "How do I reset my password?", "chosen": "Use the 'Forgot password' link.",
         "rejected": "No idea."}]
SFT = {"prompt": "How do I reset my password?", "response": [["Use the 'Forgot password' link."]]}
CELLS = [
    "%load_ext qfnb\nfrom nb_doubles import FakeTrainer\n"
    "get_ipython().magics_manager.registry['QfnbMagics'].trainer_factory = "
    "lambda spec, h: FakeTrainer(spec, h, steps=12, step_time=0.05)",
    "%qftrain --mode DPO",
    "%qftrain --mode DPO --dataset modes_pairs.jsonl --steps 12 -o run",
    "run.wait(60).status",
    # the real trainer checks the file in the mode's format before anything is sent (last: it fails)
    "from qfnb.notebook.training.run import default_trainer\n"
    "get_ipython().magics_manager.registry['QfnbMagics'].trainer_factory = default_trainer",
    "%qftrain --mode DPO --dataset modes_sft.jsonl --steps 12",
]

COLORS = """() => [...document.querySelectorAll('.qfnb-mode-format, .qfnb-mode-format code')].map(el => {
  let bg = 'rgba(0, 0, 0, 0)';
  for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
    if (c && !/^rgba\\(0, 0, 0, 0\\)$/.test(c) && c !== 'transparent') { bg = c; break; } }
  if (bg === 'rgba(0, 0, 0, 0)') bg = getComputedStyle(document.body).backgroundColor;
  return {fg: getComputedStyle(el).color, bg};
})"""


@pytest.mark.parametrize("theme", [t if t == "dark" else pytest.param(t, marks=pytest.mark.slow) for t in THEMES])
def test_the_mode_picker_a_refused_format_and_a_dpo_run(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    (root / "modes_pairs.jsonl").write_text("\n".join(json.dumps(PAIR) for _ in range(6)) + "\n", encoding="utf-8")
    (root / "modes_sft.jsonl").write_text(json.dumps(SFT) + "\n", encoding="utf-8")
    name = f"train_modes_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1200, height=1400) as page:
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_selector(".qfnb-launcher .qfnb-mode-format", timeout=60_000)
        first = page.locator(".qfnb-mode-format").first.inner_text()
        shot(page, ".qfnb-launcher", f"launcher_mode_dpo_{theme}.png")
        # the picker in the page: KTO, and the format beside it follows
        picker = page.locator(".qfnb-launcher select").filter(has=page.locator("option", has_text="KTO")).first
        picker.select_option("KTO")
        page.wait_for_function("() => document.querySelector('.qfnb-mode-format').textContent.includes('label')",
                               timeout=15_000)
        second = page.locator(".qfnb-mode-format").first.inner_text()
        shot(page, ".qfnb-launcher", f"launcher_mode_kto_{theme}.png")
        colors = page.evaluate(COLORS)
        # the wrong-format file: refused before anything runs, naming its line and what it looks like
        refused = page.locator(".jp-Cell").nth(5).locator(".jp-OutputArea")
        refused.locator("text=looks like SFT").first.wait_for(timeout=30_000)
        refused_text = refused.inner_text()
        shot(page, ".jp-Cell >> nth=5", f"qftrain_wrong_format_{theme}.png")
        page.wait_for_selector(".qfnb-dashboard >> text=succeeded", timeout=90_000)
        dash = page.locator(".qfnb-dashboard").last.inner_text()
        shot(page, ".qfnb-dashboard", f"dashboard_dpo_{theme}.png")
    assert "chosen" in first and "rejected" in first, first
    assert "label" in second and second != first, second
    assert "modes_sft.jsonl line 1" in refused_text and "DPO wants" in refused_text, refused_text
    assert "(DPO)" in dash and "12/12" in dash, dash
    low = [c for c in colors if contrast(c["fg"], c["bg"]) < 4.5]
    assert colors and not low, f"the format hint below WCAG AA 4.5:1 in the {theme} theme: {low}"

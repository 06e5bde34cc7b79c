"""JupyterLab in headless Chromium, light and dark theme: the fine-tune dashboard of a run with
checkpoints (the training double's held-out loss falls, then rises): the checkpoints marked on the
chart, the best one named in the result line and on the Deploy button, the over-fitting named.
Screenshots in artifacts/screenshots/dashboard_checkpoints_{theme}.png."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser_kit import RUN_ALL_CELLS, low_contrast, set_theme, shot, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

CELLS = [
    "%load_ext qfnb\nfrom nb_doubles import FakeTrainer\n"
    "m = get_ipython().magics_manager.registry['QfnbMagics']\n"
    "m.trainer_factory = lambda spec, h: FakeTrainer(spec, h, steps=40, step_time=0.03, checkpoints=True)",
    "%qftrain --dataset demo_qa_train.jsonl --steps 40 --eval-split 20 --name helpdesk-faq -o run",
]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_dashboard_with_checkpoints_best_and_overfitting(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    name = f"checkpoints_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1200, height=1100) as page:
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_selector(".qfnb-dashboard >> text=succeeded", timeout=90_000)
        deploy = page.locator(".qfnb-dashboard button", has_text="Deploy").last
        deploy.wait_for(state="visible", timeout=10_000)
        page.wait_for_timeout(1000)  # the last chart drawn
        shot(page, ".qfnb-dashboard", f"dashboard_checkpoints_{theme}.png")
        text = page.locator(".qfnb-dashboard").last.inner_text()
        button = deploy.inner_text()
        low = low_contrast(page, ".qfnb-dashboard .qfnb-checkpoints")  # the best checkpoint, the over-fitting
        width = deploy.evaluate("b => b.scrollWidth <= b.clientWidth")  # its words not cut
        chart = page.locator(".qfnb-dashboard img").last.bounding_box()
    # the double's held-out loss is lowest at step 12 and 16 % higher at step 40
    assert "Deploy best (step 12)" in button and width, button
    assert "over-fitting since step 12" in text, text
    assert "helpdesk-faq" in text
    assert chart is not None and chart["width"] > 300
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

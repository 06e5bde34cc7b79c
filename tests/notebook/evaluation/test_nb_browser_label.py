"""``%qfeval --models good,bad --judge … --label`` in JupyterLab (headless Chromium): a person reads each
item the widget asks for (the reference and the two answers, in the order shown) and clicks which
answer is better, until the widget says the labels are enough and who wins; then Restart & Run All
brings the verdict back at once (the labels are in the evaluation's store). Screenshots in
artifacts/screenshots/. The models and the judge are notebook functions (no model needed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from browser_kit import RUN_ALL_CELLS, shot, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

ITEMS = 120


def cells(store: Path) -> list[str]:
    return [
        f"import os\nos.environ['QFNB_EVAL_STORE'] = {str(store)!r}\n%load_ext qfnb\nimport re\nimport pandas as pd\n"
        "class Model:\n"
        "    def __init__(self, good): self.good = good\n"
        "    def __call__(self, p, **o): n = int(p.split()[2]); return str(n + 1) if n % 10 < self.good else '?'\n"
        "good, bad = Model(9), Model(4)\n"
        "def fickle_judge(prompt, **options):  # right 5, '?' 1, and unsure (3) on numbers ending in 7\n"
        "    n = int(re.search(r'what is (\\d+)', prompt).group(1))\n"
        "    if n % 10 == 7: return '评分: 3'\n"
        "    answer = prompt.split('【待评估的回答 / answer to grade】')[1].split('【')[0]\n"
        "    return '评分: 1' if '?' in answer else '评分: 5'\n"
        f"df = pd.DataFrame({{'prompt': [f'what is {{i}} + 1?' for i in range({ITEMS})],"
        f" 'response': [str(i + 1) for i in range({ITEMS})]}})",
        "%qfeval --models good,bad --dataset df --metrics exact_match --judge fickle_judge --label",
    ]


def last_line(page: Any, selector: str) -> list[str]:
    return [t.strip().splitlines()[-1].strip() for t in page.locator(selector).all_inner_texts()]


def label_one(page: Any) -> int:
    """Read the item shown, click the better answer (the one equal to the reference; a tie when both or
    neither is), wait for the next item; returns the labels counted after it."""
    head = page.locator(".qfnb-label-item p").first.inner_text()
    done = int(re.search(r"(\d+) labelled so far", head).group(1))  # type: ignore[union-attr]
    reference = last_line(page, ".qfnb-label-reference")[0]
    first, second = (a == reference for a in last_line(page, ".qfnb-label-answer"))
    word = "tie" if first == second else "answer 1 is better" if first else "answer 2 is better"
    page.locator("button.qfnb-label-choice", has_text=word).click()
    page.wait_for_function(f"() => /{done + 1} labelled so far|Every item/.test("
                           "document.querySelector('.qfnb-label-item')?.innerText ?? '')", timeout=90_000)
    return done + 1


def test_label_until_the_verdict_then_restart_and_run_all_replays_it(lab: tuple[str, Path, str],
                                                                     tmp_path: Path) -> None:
    _, root, _ = lab
    write_notebook(root / "label.ipynb", cells(tmp_path / "answers.sqlite"))
    with open_lab_page(lab, "label.ipynb", width=1100, height=1400) as page:
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_selector(".qfnb-label-widget button.qfnb-label-choice", timeout=120_000)
        shot(page, ".qfnb-label-widget", "label_widget_first_item.png")
        labels = 0
        while page.locator(".qfnb-label-verdict").count() == 0:
            labels = label_one(page)
            assert labels < ITEMS, "every item labelled and still no verdict"
        verdict = page.locator(".qfnb-label-verdict").inner_text()
        shot(page, ".qfnb-label-widget", "label_widget_verdict.png")
        assert verdict.startswith("labels enough: good wins, 95% CI"), verdict
        assert f"; {labels} labels of {ITEMS} items" in verdict and labels <= ITEMS // 2, verdict
        status = page.locator(".qfnb-label-status").inner_text()
        assert re.search(r"interval [\d.]+ wide at 0 labels, now [\d.]+", status), status
        # Restart & Run All: the same cells, a new kernel; the verdict is back with no label asked
        page.evaluate("() => document.querySelectorAll('.qfnb-label-widget').forEach(w => w.dataset.old = '1')")
        # not awaited: the command waits for the dialog's answer
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); }")
        page.locator(".jp-Dialog-button.jp-mod-accept").click()
        fresh = ".qfnb-label-widget:not([data-old]) .qfnb-label-verdict"
        page.wait_for_selector(fresh, timeout=120_000)
        again = page.locator(fresh).inner_text()
        shot(page, ".qfnb-label-widget", "label_widget_after_restart.png")
        assert again == verdict

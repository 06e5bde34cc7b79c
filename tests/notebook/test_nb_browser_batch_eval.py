"""JupyterLab in headless Chromium, light and dark: a durable ``%qfbatch`` job outlives a kernel
restart (submit, Kernel -> Restart, ``%qfbatch --attach`` shows the live bar, the finished job's
results land in a DataFrame), and the comparison report with the pairwise judge's report
(``%qfeval --recorded … --compare … --pairwise JUDGE``). Screenshots go to
artifacts/screenshots/ (batch_*.png, compare_pairwise_*.png); the text of the reports is checked
and so is the contrast of every text in them (WCAG AA, >= 4.5:1).

The batch job runs on a data dir's daemon with paced engine doubles (one word per
``QFNB_TEST_DELAY`` seconds), so the bar is seen moving; the evaluation scores recorded answers
with a judge double, so no model is needed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import RUN_ALL_CELLS, SHOTS, jupyter_lab, low_contrast, set_theme, write_notebook
from test_nb_browser import open_lab_page
from test_nb_browser_restart import KERNEL_IDLE, RUN_CELL, restart_kernel

from qfnb._core.backend import daemon

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

ROWS = 64
BATCH_CELLS = [
    f"%load_ext qfnb\nprompts = [f'Explain topic {{i}} briefly' for i in range({ROWS})]",
    "%qfbatch prompts -m Tiny-Chat --name before-restart",
    # after Kernel -> Restart: a fresh kernel finds the job and shows its bar again
    "%load_ext qfnb\nds = %qfbatch --attach",
    "df = ds.to_pandas()\ndf.head(5)",
    # the dark theme: a second job watched from submit to its results
    f"prompts = [f'Summarize note {{i}} please' for i in range({ROWS // 2})]\nds2 = %qfbatch prompts -m Tiny-Chat",
    "ds2.to_pandas().tail(3)",
]
BAR_TEXT = re.compile(r"(infer-\S+) (Running|Done) (\d+)/(\d+) rows · (\d+) failed · ([\d.]+) tok/s(?: · ETA (\S+))?")


@pytest.fixture
def batch_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, str]]:
    root, data = tmp_path / "lab", tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("QFNB_TEST_DELAY", "0.25")  # the daemon's paced engines: ~1.25 s a row, 4 slots
    daemon.ensure_daemon(data, serve_args=["--registry", "tests.batch.batch_doubles:PacedRegistry"])
    try:
        with jupyter_lab(root, QFNB_DATA_DIR=str(data), QIANFAN_CACHE_DIR=str(data / "cache")) as running:
            yield running
    finally:
        daemon.stop_daemon(data, force=True)


#: run a cell and return at once (RUN_CELL waits for the cell: %qfbatch watches its job to the end)
START_CELL = """(index) => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = index;
    window.jupyterapp.commands.execute('notebook:run-cell');
}"""


def bar_of(cell: Any) -> re.Match[str]:
    found = BAR_TEXT.search(cell.locator(".qfnb-batch").last.inner_text())
    assert found, cell.inner_text()
    return found


def test_qfbatch_outlives_a_kernel_restart_light_and_dark(batch_lab: tuple[str, Path, str]) -> None:
    _, root, _ = batch_lab
    write_notebook(root / "batch.ipynb", BATCH_CELLS)
    with open_lab_page(batch_lab, "batch.ipynb", width=1100, height=1300, ready=KERNEL_IDLE) as page:
        try:
            set_theme(page, "light")
            cells = page.locator(".jp-Notebook .jp-Cell")
            page.evaluate(RUN_CELL, 0)
            page.evaluate(START_CELL, 1)
            submitted = cells.nth(1)
            submitted.locator(".qfnb-batch", has_text=re.compile(r"Running ([1-9]\d*)/64")).first.wait_for(
                timeout=60_000)
            page.wait_for_timeout(800)
            submitted.screenshot(path=str(SHOTS / "batch_live_light.png"))
            before = bar_of(submitted)
            task = before.group(1)
            assert before.group(2) == "Running" and before.group(4) == str(ROWS) and before.group(5) == "0"
            assert float(before.group(6)) > 0 and before.group(7) != "–", before.group(0)  # tok/s and an ETA

            restart_kernel(page)
            # the old cell's last state says where the job is and how to see it again
            assert f"%qfbatch --attach {task} shows it from any kernel" in submitted.inner_text()
            page.evaluate(START_CELL, 2)
            attached = cells.nth(2)
            attached.locator(".qfnb-batch", has_text=task).first.wait_for(timeout=60_000)
            live = bar_of(attached)
            assert live.group(1) == task
            if live.group(2) == "Running":  # the job went on while no kernel watched it
                assert int(live.group(3)) >= int(before.group(3)), (before.group(0), live.group(0))
                page.wait_for_timeout(600)
                attached.screenshot(path=str(SHOTS / "batch_attached_live_light.png"))
            attached.locator(".qfnb-batch", has_text=f"Done {ROWS}/{ROWS}").first.wait_for(timeout=120_000)
            page.evaluate(RUN_CELL, 3)
            frame = cells.nth(3).locator(".jp-OutputArea-output table.dataframe")
            frame.wait_for(timeout=60_000)
            table = frame.inner_text()
            assert "llm_output" in table and "tiny-chat: Explain topic 0 briefly" in table, table
            assert "Explain topic 4 briefly" in table and "error" not in table.split("\n")[0], table
            for index in (2, 3):
                cells.nth(index).scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "batch_attached_result_light.png"))
            finished_bar = attached.locator(".qfnb-batch").last.inner_text()
            assert "ETA" not in finished_bar and "0 failed" in finished_bar, finished_bar  # nothing left to wait for
            light_low = low_contrast(page, ".qfnb-batch code, .qfnb-batch div, .jp-OutputArea-output td")

            set_theme(page, "dark")
            page.evaluate(START_CELL, 4)
            second = cells.nth(4)
            second.locator(".qfnb-batch", has_text=re.compile(r"Running ([1-9]\d*)/32")).first.wait_for(
                timeout=60_000)
            page.wait_for_timeout(800)
            second.screenshot(path=str(SHOTS / "batch_live_dark.png"))
            dark_low = low_contrast(page, ".qfnb-batch code, .qfnb-batch div, .jp-OutputArea-output td")
            second.locator(".qfnb-batch", has_text=f"Done {ROWS // 2}/{ROWS // 2}").first.wait_for(timeout=120_000)
            page.evaluate(RUN_CELL, 5)
            tail = cells.nth(5).locator(".jp-OutputArea-output table.dataframe")
            tail.wait_for(timeout=60_000)
            assert "tiny-chat: Summarize note 31 please" in tail.inner_text(), tail.inner_text()
            for index in (4, 5):
                cells.nth(index).scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "batch_result_dark.png"))
            assert not light_low, f"below WCAG AA 4.5:1 in the light theme: {light_low}"
            assert not dark_low, f"below WCAG AA 4.5:1 in the dark theme: {dark_low}"
        except Exception:
            page.screenshot(path=str(SHOTS / "batch_failure.png"), full_page=True)
            raise


JUDGE = '''def judge(prompt, **kwargs):
    """A judge double: prefers the answer that names Quellstad; when both or neither do, it
    says "A" (position bias: the two orders disagree, so the pair is a tie)."""
    a = prompt.split("【回答 A / answer A】")[1].split("【回答 B / answer B】")[0]
    b = prompt.split("【回答 B / answer B】")[1]
    if ("Quellstad" in a) != ("Quellstad" in b):
        return "Winner: A" if "Quellstad" in a else "Winner: B"
    return "Winner: A"'''
EVAL_CELLS = [
    "%load_ext qfnb\nimport pandas as pd\n"
    "df = pd.DataFrame({'prompt': [f'What is the capital of Zorvia? (asked {i} ways)' for i in range(10)],\n"
    "                   'response': ['Quellstad'] * 10,\n"
    "                   'base': ['I do not know.'] * 6 + ['Quellstad'] * 2 + ['Zorvia City', 'Quellstad'],\n"
    "                   'tuned': ['Quellstad'] * 8 + ['I think it is Quellstad', 'Quellstad']})\n" + JUDGE,
    "%qfeval --dataset df --recorded base,tuned --metrics exact_match,rouge_l --compare base --pairwise judge -o r",
]


@pytest.mark.parametrize("theme", [pytest.param("light", marks=pytest.mark.slow), "dark"])
def test_comparison_and_pairwise_reports_light_and_dark(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    name = f"compare_{theme}.ipynb"
    write_notebook(root / name, EVAL_CELLS)
    with open_lab_page(lab, name, width=1300, height=3200) as page:
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        report = page.locator(".qfnb-compare").last
        report.wait_for(timeout=90_000)
        for summary in report.locator("summary").all():  # open the flipped items
            summary.click()
        page.wait_for_timeout(800)
        forest = page.locator(".qfnb-forest img, img.qfnb-forest").last
        forest.wait_for(timeout=10_000)
        assert forest.evaluate("img => img.naturalWidth") > 200  # the forest plot drew
        report.scroll_into_view_if_needed()
        report.screenshot(path=str(SHOTS / f"compare_pairwise_{theme}.png"))
        page.locator(".jp-Cell").last.screenshot(path=str(SHOTS / f"compare_pairwise_cell_{theme}.png"))
        text = report.inner_text()
        low = low_contrast(page, ".qfnb-compare td, .qfnb-compare th, .qfnb-compare li, .qfnb-compare p, "
                                 ".qfnb-compare summary")
    # exact_match: tuned is right on 9 items, base on 3 (6, 7, 9), and base is never right where
    # tuned is wrong: 6 discordant pairs all one way, McNemar's exact p = 2 * 0.5**6 = 0.031
    assert "tuned beats base on exact_match by +0.60 (95% CI" in text and "6/10 items better, p=0.031" in text, text
    assert "McNemar exact" in text and "6 item(s) flipped" in text and "I do not know." in text, text
    # the judge: tuned wins both orders on the 7 items where only its answer names Quellstad; on the
    # 3 where both do, the double says "A" in either order: a position bias, left out of the decision, and said
    lines = text.splitlines()
    judged = next(line for line in lines if line.startswith("tuned\tjudge:judge"))
    assert "\t7/0/0\t" in judged and "\t1.0000\t" in judged, judged
    assert "order-consistency 7 of 10 pairs (70%)" in text, text
    assert "3 of 10 pairs changed verdict with the order (left out)" in text, text
    assert "the judge saw the reference" in text and "rubric pairwise-default v1 #" in text, text
    assert "judge:judge agrees with exact_match on 6 of 6 items" in text, text  # the metric's shown name
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

"""JupyterLab in headless Chromium: Restart & Run All of a notebook with ``%qfbatch``, ``%qfeval``,
``%%qfchat`` and a 2-step ``%qftrain --deploy`` asks the platform for nothing new (its engine calls
and fine-tune workers, counted at the platform, and its batch tasks stay as they were), each reuse
says so in its cell, ``%qfusage --by cell`` lists its rows under the ``In[n]`` the page shows, and
an attached, deployed job shows its endpoint and no Deploy button. The first run is drawn in the
light theme, the replay in the dark one; screenshots go to artifacts/screenshots/run_all_*.png.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import RUN_ALL_CELLS, SHOTS, jupyter_lab, set_theme, write_notebook
from test_nb_browser import needs_chromium, open_lab_page
from test_nb_browser_restart import DOUBLES, KERNEL_IDLE, restart_kernel

from qfnb._core.backend import daemon

pytestmark = [pytest.mark.browser, needs_chromium]

CELLS = [
    "%load_ext qfnb\nimport pandas as pd\nprompts = [f'Label ticket {i}' for i in range(6)]\n"
    "df = pd.DataFrame({'prompt': prompts, 'response': ['billing'] * 6})",
    "out = %qfbatch prompts -m Tiny-Chat",
    "%qfeval --models Tiny-Chat --dataset df --metrics exact_match",
    "%%qfchat -m Tiny-Chat\nSay hello",
    "%qftrain --base Tiny-Chat --dataset train.jsonl --steps 2 --deploy --name runall -o run",
    "import time\nrun.wait(180)\ndeadline = time.time() + 90\n"
    "while run.state.service is None and time.time() < deadline:\n    time.sleep(0.2)\n"
    "print('endpoint', run.state.service)",
    "%qftrain --attach {run.state.task_id} -o again\nagain.wait(60).status",
    "from qfnb.resources.batch_job import BatchJob\nprint('batch tasks', len(BatchJob.list()))",
    "%qfusage --by cell",
]
USAGE = len(CELLS) - 1


@pytest.fixture
def run_all_lab(tmp_path: Path) -> Iterator[tuple[tuple[str, Path, str], Path]]:
    root, data = tmp_path / "lab", tmp_path / "data"
    root.mkdir()
    rows = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(8)]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    daemon.ensure_daemon(data, serve_args=DOUBLES)
    try:
        with jupyter_lab(root, QFNB_DATA_DIR=str(data), QIANFAN_CACHE_DIR=str(data / "cache")) as lab:
            yield lab, data
    finally:
        daemon.stop_daemon(data, force=True)


def run_all(page: Any) -> Any:
    """Clear the outputs, Run All, and wait for the last cell's table (every cell before it ran)."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate(RUN_ALL_CELLS)
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.nth(USAGE).locator(".jp-OutputArea-output .qfnb-usage table").wait_for(timeout=400_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    return cells


def prompt_number(cell: Any) -> int:
    found = re.search(r"\[(\d+)\]", cell.locator(".jp-InputPrompt").first.inner_text())
    assert found, cell.locator(".jp-InputPrompt").first.inner_text()
    return int(found.group(1))


def usage_cells(cells: Any) -> list[int]:
    """The cell column of ``%qfusage --by cell``'s table (its index), as numbers."""
    table = cells.nth(USAGE).locator(".jp-OutputArea-output .qfnb-usage table tr > th:first-child")
    return [int(t) for t in table.all_inner_texts() if t.strip().isdigit()]


def test_restart_and_run_all_reuses_everything_and_says_so(run_all_lab: tuple[tuple[str, Path, str], Path]) -> None:
    lab, data = run_all_lab
    _, root, _ = lab
    write_notebook(root / "run_all.ipynb", CELLS)
    with open_lab_page(lab, "run_all.ipynb", width=1300, height=3000, ready=KERNEL_IDLE) as page:
        try:
            set_theme(page, "light")
            cells = run_all(page)
            first = daemon.daemon_status(data)
            assert first is not None and first.model_calls.get("fine-tune") == 1, first
            calls, tasks = dict(first.model_calls), cells.nth(7).inner_text()
            assert "batch tasks 1" in tasks, tasks
            assert "endpoint runall_" in cells.nth(5).inner_text(), cells.nth(5).inner_text()
            page.screenshot(path=str(SHOTS / "run_all_first_light.png"), full_page=True)

            restart_kernel(page)
            set_theme(page, "dark")
            cells = run_all(page)
            again = daemon.daemon_status(data)
            assert again is not None and dict(again.model_calls) == calls  # 0 new engine calls, 0 new trainings
            assert "batch tasks 1" in cells.nth(7).inner_text()  # 0 new batch tasks
            # each reuse is said in its cell
            assert re.search(r"↺ reused infer-\S+", cells.nth(1).inner_text()), cells.nth(1).inner_text()
            assert "--fresh runs it again" in cells.nth(1).inner_text()
            assert "answers reused from earlier runs" in cells.nth(2).inner_text(), cells.nth(2).inner_text()
            assert "cached" in cells.nth(3).inner_text(), cells.nth(3).inner_text()
            assert "reused finished run" in cells.nth(4).inner_text(), cells.nth(4).inner_text()
            # the attached, deployed job: its endpoint, no Deploy button
            attached = cells.nth(6)
            text = attached.inner_text()
            assert "endpoint runall_" in text and "succeeded" in text, text
            assert attached.locator("button:visible", has_text="Deploy").count() == 0
            # %qfusage --by cell: the rows are under the numbers the page shows
            shown = {prompt_number(cells.nth(i)) for i in range(len(CELLS))}
            listed = usage_cells(cells)
            assert listed and set(listed) <= shown, (listed, shown)
            assert prompt_number(cells.nth(1)) in listed and prompt_number(cells.nth(3)) in listed, listed
            assert "this kernel session · --all for everything" in cells.nth(USAGE).inner_text()
            page.screenshot(path=str(SHOTS / "run_all_replay_dark.png"), full_page=True)
            attached.screenshot(path=str(SHOTS / "run_all_attached_deployed_dark.png"))
        except Exception:
            page.screenshot(path=str(SHOTS / "run_all_failure.png"), full_page=True)
            raise

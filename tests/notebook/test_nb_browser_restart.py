"""A fine-tune outlives a kernel restart (JupyterLab + headless Chromium).

``%qftrain`` starts a job on the data dir's local platform daemon; Kernel → Restart Kernel…
from the menu; the SDK's ``trainer.run()`` shows its progress in a fresh kernel (no
``%load_ext``); ``%qftrain --attach`` brings back one live dashboard of the same job, which
finishes; its Deploy button (clicked in the page) deploys the model, the endpoint answers
through ``%%qfchat -m NAME`` with a footer naming the session and its turns, ``%qfeval``
compares it with the base right away, and the saved notebook shows the job finished. The
daemon runs the engine and training-worker test doubles, so this takes seconds of training;
the real engines are covered by the real-model tests. Screenshots go to
artifacts/screenshots/.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_kit import SHOTS, jupyter_lab, write_notebook
from test_nb_browser import SAVE, needs_chromium, open_lab_page

from qfnb._core.backend import daemon

ROOT = Path(__file__).resolve().parents[2]
FAKE_WORKER = ROOT / "tests" / "local" / "fake_worker.py"
DOUBLES = ["--registry", "tests.local.platform_doubles:FakeRegistry",
           "--worker-command", f"{sys.executable} {FAKE_WORKER}"]

CELLS = [
    "%load_ext qfnb",
    "%qftrain --base Tiny-Chat --dataset train.jsonl --steps 1500",
    "%load_ext qfnb\n%qftrain --attach -o run",
    "run.wait(240).status",
    # the Deploy button of the attached dashboard was clicked in the page; its endpoint:
    "import time\ndeadline = time.time() + 60\nwhile run.state.service is None and time.time() < deadline:\n"
    "    time.sleep(0.2)\n"
    "ep = run.state.service\nep",
    "%qfeval --models Tiny-Chat,{ep} --dataset eval.jsonl --metrics exact_match -o report",
    # a batch's bar still running when the kernel restarts (the renderer batch_do draws)
    "from qfnb.notebook.widgets.progress import Progress\n"
    "bar = Progress(total=10, desc='batch', mode='widget'); bar.on_start(10); bar.on_result(0, True)",
    # the SDK's fine-tune in a fresh kernel, before any %load_ext: its progress shows in the cell
    "from qfnb.dataset import Dataset\nfrom qfnb.trainer import LLMFinetune, TrainConfig\n"
    "sdk = LLMFinetune(train_type='Tiny-Chat', dataset=Dataset.load(data_file='train.jsonl'),\n"
    "                  train_config=TrainConfig(max_steps=60), name='sdk-run')\nsdk.run().status",
    # the deployed endpoint by the name %qfmodels lists, twice: the footer counts the session's turns
    "%%qfchat -m {ep}\nhello there",
    "%%qfchat -m {ep}\nand again",
    # the SDK's deploy in the same fresh kernel, still before any %load_ext: its stages show in the cell
    "from qfnb.model import DeployConfig\n"
    "svc = sdk.output['model'].deploy(DeployConfig(endpoint_suffix='ep_sdk'))\nsvc.endpoint",
]
#: the old cells after the restart: ipywidgets marked their views disconnected; qfnb's CSS must
#: hide the broken-link icons and dead buttons and show the "kernel restarted" line instead
OLD_OUTPUT = """(cell) => {
    const all = sel => Array.from(cell.querySelectorAll(sel));
    const shown = el => getComputedStyle(el).display !== 'none' && el.getClientRects().length > 0;
    const icons = all('.jupyter-widgets-disconnected')
        .filter(el => !['none', 'normal'].includes(getComputedStyle(el, '::before').content));
    return {disconnected: all('.jupyter-widgets-disconnected').length, icons: icons.length,
            liveOnlyShown: all('.qfnb-live-only').filter(shown).length,
            notes: all('.qfnb-offline-note').filter(shown).map(el => el.innerText),
            text: cell.innerText};
}"""
RUN_CELL = """async (index) => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = index;
    await window.jupyterapp.commands.execute('notebook:run-cell');
}"""
KERNEL_IDLE = "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'"


@pytest.fixture
def daemon_lab(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    root, data = tmp_path / "lab", tmp_path / "data"
    root.mkdir()
    rows = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(8)]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (root / "eval.jsonl").write_text("\n".join(json.dumps({"prompt": f"x{i}", "response": f"y{i}"})
                                               for i in range(4)))
    daemon.ensure_daemon(data, serve_args=DOUBLES)
    try:
        with jupyter_lab(root, QFNB_DATA_DIR=str(data), QIANFAN_CACHE_DIR=str(data / "cache")) as lab:
            yield lab
    finally:
        daemon.stop_daemon(data, force=True)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_finetune_survives_kernel_restart_and_attach(daemon_lab: tuple[str, Path, str]) -> None:
    _, root, _ = daemon_lab
    write_notebook(root / "restart.ipynb", CELLS)
    with open_lab_page(daemon_lab, "restart.ipynb", ready=KERNEL_IDLE) as page:
        try:
            for index in (0, 1, 6):
                page.evaluate(RUN_CELL, index)
            cells = page.locator(".jp-Notebook .jp-Cell")
            # the job is running: its dashboard counts steps
            cells.nth(1).locator("text=/step [1-9][0-9]*\\/1500/").first.wait_for(timeout=60_000)
            assert "%qftrain --attach task-" in cells.nth(1).inner_text()  # the dashboard says how to come back
            page.screenshot(path=str(SHOTS / "restart_before.png"))

            restart_kernel(page)
            check_old_outputs(page, cells)

            for index in (2, 3):
                page.evaluate(RUN_CELL, index)
            cells.nth(3).locator(".jp-OutputArea-output", has_text="succeeded").wait_for(timeout=240_000)
            attached = cells.nth(2)
            # one dashboard, not two; the same dashboard a launch shows: Deploy once it succeeded
            assert attached.locator(".qfnb-dashboard, .qfnb-train-summary").count() == 1
            dash_text = attached.inner_text()
            assert "1500/1500" in dash_text and "stopped" not in dash_text, dash_text
            assert attached.locator("img").count() >= 1  # the loss chart
            assert "run.deploy()" in dash_text  # the next step names the -o variable
            deploy = attached.locator("button", has_text="Deploy")
            deploy.wait_for(state="visible", timeout=10_000)
            attached.screenshot(path=str(SHOTS / "restart_attached_deploy_button.png"))
            deploy.click()
            page.evaluate(RUN_CELL, 4)
            cells.nth(4).locator(".jp-OutputArea-output", has_text="ep_").wait_for(timeout=90_000)
            attached.locator(".jp-OutputArea-output", has_text="%%qfchat -m ep_").first.wait_for(timeout=30_000)
            page.screenshot(path=str(SHOTS / "restart_attached_finished.png"), full_page=True)
            for index in (8, 9):  # the endpoint answers through -m NAME; the footer names session and turns
                page.evaluate(RUN_CELL, index)
            cells.nth(9).locator(".jp-OutputArea-output", has_text="1 turn in context").first.wait_for(
                timeout=120_000)
            first = cells.nth(8).inner_text()
            assert "session default · 0 turns in context" in first and "Error" not in first, first
            cells.nth(9).scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "qfchat_footer_session_light.png"))
            page.evaluate(RUN_CELL, 5)
            report = cells.nth(5)
            report.locator(".jp-OutputArea-output", has_text="exact_match").first.wait_for(timeout=120_000)
            report.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "restart_qfeval_after_deploy.png"), full_page=True)
            report_text = report.inner_text()
            assert "no deployed service" not in report_text and "Error" not in report_text, report_text
            page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                          "{theme: 'JupyterLab Dark'})")
            page.wait_for_timeout(1500)
            attached.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "restart_attached_deployed_dark.png"))
            cells.nth(9).scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "qfchat_footer_session_dark.png"))
            restart_kernel(page)  # a fresh kernel again: the SDK's fine-tune before any %load_ext
            page.evaluate(RUN_CELL, 7)  # trainer.run() before %load_ext in this kernel
            sdk = cells.nth(7)
            # a widget while it runs (its final state then static), not stderr lines
            sdk.locator(".qfnb-progress, .qfnb-progress-static").first.wait_for(timeout=60_000)
            sdk.locator(".jp-OutputArea-output", has_text="60/60").first.wait_for(timeout=240_000)
            assert sdk.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            sdk.scroll_into_view_if_needed()
            sdk.screenshot(path=str(SHOTS / "sdk_trainer_run_progress.png"))
            assert "fine-tune sdk-run" in sdk.inner_text(), sdk.inner_text()
            page.evaluate(RUN_CELL, 10)  # Model.deploy() before %load_ext: a stage bar, then the endpoint
            dep = cells.nth(10)
            dep.locator(".qfnb-progress, .qfnb-progress-static").first.wait_for(timeout=60_000)
            dep.locator(".jp-OutputArea-output", has_text="serving at endpoint ep_sdk").first.wait_for(
                timeout=120_000)
            assert dep.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            dep.scroll_into_view_if_needed()
            dep.screenshot(path=str(SHOTS / "sdk_model_deploy_progress.png"))
            assert "deploy " in dep.inner_text() and "2/2" in dep.inner_text(), dep.inner_text()
            assert page.evaluate(SAVE)
            check_saved_fallbacks(nbformat.read(root / "restart.ipynb", as_version=4))
        except Exception:
            page.screenshot(path=str(SHOTS / "restart_failure.png"), full_page=True)
            raise


def restart_kernel(page: Any) -> None:
    """Kernel -> Restart Kernel… from the menu, as a user does."""
    page.get_by_text("Kernel", exact=True).first.click()
    page.get_by_text("Restart Kernel…", exact=True).first.click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_timeout(1000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)


def check_old_outputs(page: Any, cells: Any) -> None:
    """After the restart: the running job's old dashboard and the cut-short bar show their last
    state, with no broken-link icon or dead button, and say the kernel restarted."""
    cells.nth(1).locator(".qfnb-offline-note").first.wait_for(state="visible", timeout=10_000)
    old = cells.nth(1).evaluate(OLD_OUTPUT)
    assert old["disconnected"] > 0, "ipywidgets marks views of a gone kernel (the case under test)"
    assert old["icons"] == 0 and old["liveOnlyShown"] == 0, old
    assert old["notes"] and "%qftrain --attach task-" in old["notes"][0], old
    assert "step " in old["text"] and "/1500" in old["text"], old["text"]
    bar = cells.nth(6).evaluate(OLD_OUTPUT)
    assert bar["disconnected"] > 0 and bar["icons"] == 0 and bar["notes"], bar
    assert "1/10" in bar["text"], bar["text"]
    cells.nth(1).scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "restart_old_outputs_after_restart.png"))
    cells.nth(6).screenshot(path=str(SHOTS / "restart_old_bar_after_restart.png"))


def check_saved_fallbacks(nb: Any) -> None:
    """The saved notebook: the old outputs keep a static HTML state for viewers without widgets,
    and the finished job's dashboard is saved finished (deployed), not "running"."""
    attached = [o.get("data", {}) for o in nb.cells[2].outputs]
    final = [b.get("text/plain", "") for b in attached]
    assert any("succeeded" in t and "service ep_" in t for t in final), final
    assert not any(": running ·" in t for t in final), final
    for index, marker, state in ((1, "qfnb-dashboard-static", "/1500"), (6, "qfnb-progress-static", "/10")):
        bundles = [o.get("data", {}) for o in nb.cells[index].outputs]
        html = [b["text/html"] for b in bundles if "text/html" in b]
        # the state refreshed while it ran (the first display knew no step count yet)
        assert any(marker in h and state in h for h in html), (index, bundles)

"""Real browser: JupyterLab + headless Chromium (Playwright) renders the live widgets.

The fine-tune notebook runs here, and only here: Run All in JupyterLab, save, then the saved
notebook's ``# NBVAL_CHECK_OUTPUT`` cells are compared with the repo notebook's stored outputs
(``nbcheck``, nbval's rules) next to the dashboard and evaluation checks. Without the Debian
``chromium`` executable the same checks run on an nbclient execution instead.
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_kit import KERNEL, SHOTS
from nbcheck import NOTEBOOKS, contract_mismatches, errors, find, stderr_of, strip_outputs, text_of
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from sentence_check import false_claims

FINETUNE = NOTEBOOKS / "02_finetune_end_to_end.ipynb"
HAVE_CHROMIUM = shutil.which("chromium") is not None
logger = logging.getLogger(__name__)
needs_chromium = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs the chromium executable")


RUN_ALL = """() => {
    window.qfnbRunAll = undefined;
    window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        ok => { window.qfnbRunAll = ok === true; }, () => { window.qfnbRunAll = false; });
}"""
SAVE = """async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    await window.jupyterapp.commands.execute('docmanager:save');
    return !panel.context.model.dirty;
}"""


KERNEL_STARTED = "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel"
# what a page that is not ready shows: the app, its current document, its kernel, any dialog in the way
PAGE_STATE = """() => JSON.stringify({
    app: window.jupyterapp?.name ?? null,
    widget: window.jupyterapp?.shell.currentWidget?.title?.label ?? null,
    kernel: window.jupyterapp?.shell.currentWidget?.sessionContext?.kernelDisplayStatus ?? null,
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 300)),
})"""
READY_MS = 90_000


def wait_until_ready(page: Any, ready: str, name: str) -> None:
    """Wait for the JS predicate ``ready``; a page still not ready after ``READY_MS`` is screenshotted,
    its state logged and reloaded once (as a person would), and a second miss fails with that state."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in (1, 2):
        try:
            page.wait_for_function(ready, timeout=READY_MS)
            return
        except PlaywrightTimeout:
            state = page.evaluate(PAGE_STATE)
            page.screenshot(path=str(SHOTS / f"not_ready_{Path(name).stem}_{attempt}.png"))
            if attempt == 2:
                raise AssertionError(f"{name}: not ready after two loads of {READY_MS // 1000} s: {state}") from None
            logger.warning("%s: not ready after %d s (%s): reloading once", name, READY_MS // 1000, state)
            page.reload(wait_until="domcontentloaded", timeout=60_000)


@contextlib.contextmanager
def open_lab_page(lab: tuple[str, Path, str], name: str, *, width: int = 1280, height: int = 1600,
                  ready: str = KERNEL_STARTED, path: str = "lab/tree") -> Iterator[Any]:
    """Headless Chromium showing notebook ``name`` in JupyterLab (``path="notebooks"``: in Notebook 7),
    once ``ready`` (a JS predicate, by default: its kernel has started) holds; the browser closes on exit."""
    from playwright.sync_api import sync_playwright

    base, _, token = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            # the app's own readiness is awaited below: the page's load event (every bundle fetched) waited
            # on alone took over playwright's 30 s once, the first Notebook 7 page of a worker at load 7
            page.goto(f"{base}/{path}/{name}?token={token}" + ("&reset" if path == "lab/tree" else ""),
                      wait_until="domcontentloaded", timeout=60_000)
            wait_until_ready(page, ready, name)
            yield page
        finally:
            browser.close()


def run_notebook_in_browser(
    lab: tuple[str, Path, str], name: str, timeout_ms: int, wait_text: str, shots: dict[str, str],
    interact: Callable[[Any], None] | None = None,
) -> tuple[bool, list[str]]:
    """Run All in JupyterLab and save; (whether every cell ran, the rendered output texts).
    ``interact(page)`` runs after Run All, before waiting for ``wait_text`` (e.g. a click)."""
    with open_lab_page(lab, name) as page:
        page.evaluate(RUN_ALL)
        page.wait_for_function("() => window.qfnbRunAll !== undefined", polling=1000, timeout=timeout_ms)
        ran_all = bool(page.evaluate("() => window.qfnbRunAll"))
        assert page.evaluate(SAVE), f"JupyterLab did not save {name}"
        if not ran_all:
            return False, page.locator(".jp-OutputArea-output").all_inner_texts()
        if interact is not None:
            interact(page)
        page.wait_for_selector(f".jp-OutputArea-output >> text={wait_text} >> visible=true", timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SHOTS / f"{Path(name).stem}_page.png"), full_page=True)
        for selector, shot in shots.items():
            page.locator(selector).last.scroll_into_view_if_needed()
            page.locator(selector).last.screenshot(path=str(SHOTS / shot))
        return True, page.locator(".jp-OutputArea-output").all_inner_texts()


def fake_trainer_notebook(root: Path, name: str, steps: int, *cells: str) -> None:
    """A notebook whose ``%qftrain`` jobs run on the FakeTrainer double (``steps`` quick steps)."""
    setup = ("%load_ext qfnb\nfrom nb_doubles import FakeTrainer\n"
             "get_ipython().magics_manager.registry['QfnbMagics'].trainer_factory = "
             f"lambda spec, h: FakeTrainer(spec, h, steps={steps}, step_time=0.05)")
    nb = new_notebook(cells=[new_code_cell(c) for c in (setup, *cells)], metadata=KERNEL)
    nbformat.write(nb, root / name)


def assert_widgets_rendered(ran_all: bool, texts: list[str], *needles: str) -> None:
    assert ran_all, texts
    joined = "\n".join(texts)
    assert "Loading widget" not in joined and "Error displaying widget" not in joined
    missing = [n for n in needles if n not in joined]
    assert not missing, (missing, joined[-2000:])


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_dashboard_renders_finished_state(lab: tuple[str, Path, str]) -> None:
    _, root, _ = lab
    fake_trainer_notebook(root, "dash.ipynb", 40, "%qftrain --dataset demo_sft.jsonl --steps 40 -o dash",
                          "dash.wait(60).status")
    ran_all, texts = run_notebook_in_browser(
        lab, "dash.ipynb", 90_000, "'succeeded'", {".qfnb-dashboard": "dashboard_fake_trainer.png"}
    )
    # succeeded, Deploy still to do: the widget (its Deploy button) stays, the next step names the job
    assert_widgets_rendered(ran_all, texts, "succeeded", "step 40/40", "am-42", "Deploy", "dash.deploy()")


@pytest.mark.browser
@needs_chromium
def test_launcher_form_launches_from_the_browser(lab: tuple[str, Path, str]) -> None:
    """``%qftrain`` with no arguments: the form renders, a click on Launch in the page starts the
    job in the kernel, and its dashboard replaces the form's result area."""
    _, root, _ = lab
    fake_trainer_notebook(root, "launcher.ipynb", 20, "%qftrain")
    # the user's own data beside the notebook: the form's default (never the bundled demo set)
    row = {"prompt": "How do I reset my password?", "response": "Use the 'Forgot password' link."}
    (root / "helpdesk.jsonl").write_text("\n".join(json.dumps(row) for _ in range(4)) + "\n")

    def click_launch(page: Any) -> None:
        page.wait_for_selector(".qfnb-launcher", timeout=30_000)
        page.locator(".qfnb-launcher button", has_text="Launch").first.click()

    ran_all, texts = run_notebook_in_browser(
        lab, "launcher.ipynb", 90_000, "step 20/20", {".qfnb-launcher": "launcher_after_launch.png"},
        interact=click_launch,
    )
    # final, Deploy offered, and the record of what was launched above it
    assert_widgets_rendered(ran_all, texts, "succeeded", "step 20/20", "Deploy", "launched as: %qftrain --base")
    # Run All again: the cell's new form says what this cell launched (not a blank form)
    ran_all, texts = run_notebook_in_browser(
        lab, "launcher.ipynb", 90_000, "launched from this cell", {".qfnb-launcher": "launcher_after_run_all.png"})
    assert_widgets_rendered(ran_all, texts, "launched from this cell at", "%qftrain --base")


@pytest.mark.browser
@needs_chromium
def test_run_all_stops_at_a_failing_cell_and_saves(lab: tuple[str, Path, str]) -> None:
    _, root, _ = lab
    cells = [new_code_cell("x = 1"), new_code_cell("raise ValueError('boom')"), new_code_cell("print('never')")]
    nbformat.write(new_notebook(cells=cells, metadata=KERNEL), root / "fails.ipynb")
    ran_all, _ = run_notebook_in_browser(lab, "fails.ipynb", 60_000, "boom", {})
    saved = nbformat.read(root / "fails.ipynb", as_version=4)
    assert not ran_all
    assert errors(saved) == ["ValueError: boom"] and not saved.cells[2].outputs


def check_finetune_run(executed: nbformat.NotebookNode) -> None:
    """The fine-tune notebook's contract: stored outputs (nbval rules), dashboard, chat, report."""
    assert not errors(executed), errors(executed)
    assert not stderr_of(executed), stderr_of(executed)[:3]  # no engine chatter in red under the cells
    mismatches = contract_mismatches(executed, nbformat.read(FINETUNE, as_version=4))
    assert not mismatches, mismatches
    assert text_of(find(executed, "run.wait(")).strip() == "succeeded"
    assert "[qftrain] Gemma-3-270M ← demo_qa_train.jsonl: succeeded" in text_of(find(executed, "%qftrain"))
    for needle in ("-o base_answer", "-o compare"):  # the streamed answers' final update was kept
        streamed = text_of(find(executed, needle))
        assert "tokens" in streamed and "streaming…" not in streamed, streamed
    report = text_of(find(executed, "%qfeval"))
    assert "base" in report and "tuned" in report and "rouge_l" in report, report
    # issue 23: the comparison with base is shown, and its sentences are true of the held-out scores
    assert re.search(r"tuned (beats|is worse than|vs) base on rouge_l", report), report
    assert not false_claims(report), false_claims(report)


@pytest.mark.real_model
@pytest.mark.parametrize(
    "frontend", [pytest.param("jupyterlab", marks=pytest.mark.browser) if HAVE_CHROMIUM else "nbclient"]
)
def test_finetune_notebook(frontend: str, request: pytest.FixtureRequest) -> None:
    """Runs 02 once: in JupyterLab (saved by Lab, then read back), or with nbclient without chromium."""
    fresh = strip_outputs(nbformat.read(FINETUNE, as_version=4))
    if frontend == "nbclient":
        NotebookClient(
            fresh, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
        check_finetune_run(fresh)
        return
    _, root, _ = lab = request.getfixturevalue("lab")
    nbformat.write(fresh, root / "finetune.ipynb")
    ran_all, texts = run_notebook_in_browser(
        lab,
        "finetune.ipynb",
        1_800_000,
        "Evaluation",
        {
            ".qfnb-chat": "chat_tuned_vs_base.png",
            ".qfnb-dashboard-static": "training_dashboard.png",
            ".qfnb-eval-report": "eval_report.png",
        },
    )
    saved = nbformat.read(root / "finetune.ipynb", as_version=4)
    assert ran_all, [*errors(saved), *texts[-4:]]  # the error, and what the cells before it showed (the run's state)
    assert "Loading widget" not in "\n".join(texts)
    check_finetune_run(saved)

"""Real browser: JupyterLab + headless Chromium (Playwright) renders the live widgets.

Screenshots go to artifacts/screenshots/. Needs the Debian ``chromium`` executable.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium executable"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'notebook'}",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.extension_manager=readonly",
            f"--ServerApp.root_dir={root}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", root, token  # type: ignore[misc]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_notebook_in_browser(
    lab: tuple[str, Path, str], name: str, timeout_ms: int, wait_text: str, shots: dict[str, str]
) -> list[str]:
    from playwright.sync_api import sync_playwright

    base, _, token = lab  # type: ignore[misc]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(f"{base}/lab/tree/{name}?token={token}&reset")
            page.wait_for_function(
                "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel", timeout=60_000
            )
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(f".jp-OutputArea-output >> text={wait_text}", timeout=timeout_ms)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(SHOTS / f"{Path(name).stem}_page.png"), full_page=True)
            for selector, shot in shots.items():
                page.locator(selector).last.scroll_into_view_if_needed()
                page.locator(selector).last.screenshot(path=str(SHOTS / shot))
            return [t for t in page.locator(".jp-OutputArea-output").all_inner_texts()]
        finally:
            browser.close()


def test_dashboard_renders_finished_state(lab) -> None:  # type: ignore[no-untyped-def]
    _, root, _ = lab
    nb = new_notebook(
        cells=[
            new_code_cell(
                "%load_ext qfnb\nfrom nb_doubles import FakeTrainer\n"
                "get_ipython().magics_manager.registry['QfnbMagics'].trainer_factory = "
                "lambda spec, h: FakeTrainer(spec, h, steps=40, step_time=0.05)"
            ),
            new_code_cell("%qftrain --dataset demo_sft.jsonl --steps 40 -o dash"),
            new_code_cell("dash.wait(60).status"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, root / "dash.ipynb")
    texts = run_notebook_in_browser(
        lab, "dash.ipynb", 90_000, "'succeeded'", {".qfnb-dashboard": "dashboard_fake_trainer.png"}
    )
    joined = "\n".join(texts)
    assert "Loading widget" not in joined and "Error displaying widget" not in joined
    assert "succeeded" in joined and "step 40/40" in joined and "am-42" in joined


@pytest.mark.real_model
def test_finetune_notebook_in_browser(lab) -> None:  # type: ignore[no-untyped-def]
    _, root, _ = lab
    shutil.copy(ROOT / "notebooks" / "02_finetune_end_to_end.ipynb", root / "finetune.ipynb")
    os.environ.setdefault("QFNB_TOUR_STEPS", "30")
    texts = run_notebook_in_browser(
        lab,
        "finetune.ipynb",
        1_800_000,
        "Evaluation",
        {
            ".qfnb-chat": "chat_tuned_vs_base.png",
            ".qfnb-dashboard": "training_dashboard.png",
            ".qfnb-eval-report": "eval_report.png",
        },
    )
    joined = "\n".join(texts)
    assert "Loading widget" not in joined
    assert "succeeded" in joined and "tuned" in joined

"""A ``%%qfchat -s NAME`` conversation continued after the platform's daemon and the kernel both
restart (JupyterLab + headless Chromium, light and dark): two turns, the daemon stopped and started
again, Kernel → Restart Kernel… from the menu, then ``%qfchat history trip`` shows both turns from
the platform and the next cell's footer counts them ("session trip · 2 turns in context · kept by
the platform"). The daemon runs the engine doubles (an echo model), so the test takes seconds of
answering; the real engine across restarts is in test_nb_named_sessions.py. Screenshots go to
artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import SHOTS, jupyter_lab, set_theme, write_notebook
from test_nb_browser import needs_chromium, open_lab_page
from test_nb_browser_restart import DOUBLES, KERNEL_IDLE, RUN_CELL, restart_kernel

from qfnb._core.backend import daemon

CELLS = [
    "%load_ext qfnb",
    "%%qfchat -s trip -m Tiny-Chat\nMy name is Ada.",
    "%%qfchat -s trip -m Tiny-Chat\nWhat is my name?",
    "%load_ext qfnb\n%qfchat history trip",
    "%%qfchat -s trip -m Tiny-Chat\nAnd once more?",
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[tuple[str, Path, str], Path]]:
    root, data = tmp_path / "lab", tmp_path / "data"
    root.mkdir()
    daemon.ensure_daemon(data, serve_args=DOUBLES)
    try:
        with jupyter_lab(root, QFNB_DATA_DIR=str(data), QIANFAN_CACHE_DIR=str(data / "cache")) as served:
            yield served, data
    finally:
        daemon.stop_daemon(data, force=True)


def _output(cell: Any) -> str:
    return str(cell.locator(".jp-OutputArea").inner_text())


@pytest.mark.browser
@needs_chromium
def test_a_named_session_goes_on_after_daemon_and_kernel_restarts(
        lab: tuple[tuple[str, Path, str], Path]) -> None:
    served, data = lab
    _, root, _ = served
    write_notebook(root / "session.ipynb", CELLS)
    with open_lab_page(served, "session.ipynb", ready=KERNEL_IDLE) as page:
        try:
            cells = page.locator(".jp-Notebook .jp-Cell")
            for index in (0, 1, 2):
                page.evaluate(RUN_CELL, index)
            cells.nth(2).locator(".jp-OutputArea-output", has_text="1 turn in context").first.wait_for(
                timeout=60_000)
            assert "session trip · 0 turns in context" in _output(cells.nth(1)), _output(cells.nth(1))

            old = daemon.ensure_daemon(data, serve_args=DOUBLES).pid
            daemon.stop_daemon(data, timeout=30)  # SIGTERM: the platform's daemon goes away
            assert daemon.ensure_daemon(data, serve_args=DOUBLES).pid != old
            restart_kernel(page)

            for index in (3, 4):
                page.evaluate(RUN_CELL, index)
            cells.nth(4).locator(".jp-OutputArea-output", has_text="2 turns in context").first.wait_for(
                timeout=60_000)
            history, answer = _output(cells.nth(3)), _output(cells.nth(4))
            assert "My name is Ada." in history and "What is my name?" in history, history
            assert "tiny-chat: And once more?" in answer and "kept by the platform" in answer, answer
            assert "Error" not in history + answer
            for theme in ("light", "dark"):
                set_theme(page, theme)
                cells.nth(3).scroll_into_view_if_needed()
                page.screenshot(path=str(SHOTS / f"qfchat_named_session_after_restart_{theme}.png"))
        except Exception:
            page.screenshot(path=str(SHOTS / "qfchat_named_session_failure.png"), full_page=True)
            raise

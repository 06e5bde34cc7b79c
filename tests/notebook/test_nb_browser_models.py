"""JupyterLab in headless Chromium with the real platform daemon: a model added from the notebook
(``qfnb.local_models.add``) is listed by ``%qfmodels`` and offered by Tab in ``%%qfchat -m`` at once.

The kernel starts the data dir's daemon as a user's would; the model store is a temporary one, and
the daemon is stopped by the test. Screenshots: artifacts/screenshots/models_*.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_kit import SHOTS, jupyter_lab, write_notebook
from test_nb_browser import RUN_ALL, open_lab_page

from qfnb._core.backend.daemon import stop_daemon
from tests.store.test_model_store import tiny_gguf

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

NAME = "byo-tiny-chat"
CELLS = [
    "%load_ext qfnb\nimport qfnb.local_models as lm\nlm.add('tiny-byo.gguf', name='byo-tiny-chat')['roles']",
    "%qfmodels",
]


@pytest.fixture()
def lab_with_store(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    root, data = tmp_path / "lab", tmp_path / "data"
    root.mkdir()
    tiny_gguf(root / "tiny-byo.gguf")
    write_notebook(root / "models.ipynb", CELLS)
    try:
        with jupyter_lab(root, QFNB_DATA_DIR=str(data), QFNB_MODEL_CACHE=str(tmp_path / "store")) as running:
            yield running
    finally:
        if data.exists():
            stop_daemon(data, force=True)


def test_an_added_model_is_listed_and_tab_completed(lab_with_store: tuple[str, Path, str]) -> None:
    with open_lab_page(lab_with_store, "models.ipynb", height=1200) as page:
        page.evaluate(RUN_ALL)
        page.wait_for_function("() => window.qfnbRunAll !== undefined", polling=500, timeout=180_000)
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        assert page.evaluate("() => window.qfnbRunAll"), outputs
        joined = "\n".join(outputs)
        assert "'chat', 'completion'" in joined and NAME in joined.split("'chat', 'completion'", 1)[1], joined
        # a new cell: type the magic's line, then Tab where the model name goes
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:insert-cell-below')")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:enter-edit-mode')")
        editor = page.locator(".jp-Notebook .jp-Cell.jp-mod-active .cm-content")
        editor.click()
        page.keyboard.type("%%qfchat -m byo-ti")
        page.keyboard.press("Tab")
        page.wait_for_function(
            "name => document.querySelector('.jp-Notebook .jp-Cell.jp-mod-active .cm-content')"
            "?.textContent.includes(name) || [...document.querySelectorAll('.jp-Completer-item')]"
            ".some(e => e.textContent.includes(name))", arg=NAME, timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(SHOTS / "models_tab_completion.png"))
        line = page.locator(".jp-Notebook .jp-Cell.jp-mod-active .cm-content").inner_text()
        offered = page.locator(".jp-Completer-item").all_inner_texts()
        assert f"%%qfchat -m {NAME}" in line or any(NAME in o for o in offered), (line, offered)
        if offered:  # the popup: Enter takes the offered name into the line
            page.keyboard.press("Enter")
            page.wait_for_function("name => document.querySelector('.jp-Notebook .jp-Cell.jp-mod-active "
                                   ".cm-content')?.textContent.includes(name)", arg=NAME, timeout=10_000)
        assert page.locator(".jp-Notebook .jp-Cell.jp-mod-active .cm-content").inner_text().strip() == \
            f"%%qfchat -m {NAME}"
        listing = page.locator(".jp-OutputArea-output").nth(1)
        listing.scroll_into_view_if_needed()
        listing.screenshot(path=str(SHOTS / "models_qfmodels.png"))

"""Inline completions from the real local coder model (Qwen2.5-Coder-0.5B through llama-server's
``/infill``) in a live JupyterLab with headless Chromium, light and dark: after a cell that built a
DataFrame, the ghost text for a line that uses it names one of its columns, and Tab inserts it.
The notebook's opening loads the engine (the extension's warm request). Screenshots:
artifacts/screenshots/completions_real_*.png."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import jupyter_lab, set_theme, shot, write_notebook
from test_nb_browser import needs_chromium, open_lab_page
from test_nb_browser_completions import GHOST, _run_first_cell

from qfnb._core.backend import daemon
from qfnb._core.record.ledger import LEDGER_FILE, Ledger
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL
from qfnb.protocol.wires.local.completion import COMPLETION_KIND

pytestmark = [pytest.mark.browser, pytest.mark.real_model, pytest.mark.slow, needs_chromium]

#: the real model on a loaded 2-core machine may take tens of seconds (JupyterLab stops waiting after `timeout`)
SETTINGS = {"providers": {"@qfnb/inline-completer": {"timeout": 180_000}}}
SALES = ("import pandas as pd\n"
         "sales = pd.DataFrame({'region': ['north', 'south', 'east'], 'units_sold': [120, 95, 143],\n"
         "                      'unit_price': [2.5, 3.0, 2.75]})")
COLUMNS = ("region", "units_sold", "unit_price")
#: what is typed in each theme's notebook (two contexts: the second is no answer from the server's cache)
TYPED = {"light": "by_region = sales.groupby(", "dark": "sales['revenue'] = sales["}


@pytest.fixture(scope="module")
def real_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, Path, str], Path]]:
    """A Lab whose server extension reaches a daemon on the platform's default registry (the real coder)."""
    base = tmp_path_factory.mktemp("completions-real")
    root, data = base / "lab", base / "data"
    settings = root / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "completer-extension"
    settings.mkdir(parents=True)
    (settings / "inline-completer.jupyterlab-settings").write_text(json.dumps(SETTINGS))
    daemon.ensure_daemon(data)
    try:
        with jupyter_lab(root, QFNB_DATA_DIR=str(data), QIANFAN_CACHE_DIR=str(data / "cache")) as lab:
            yield lab, data
    finally:
        daemon.stop_daemon(data, force=True)


def _streamed_ghost(page: Any, settled_s: float = 3.0, most_s: float = 180.0) -> str:
    """The ghost text once its stream ended: the first tokens show at once, the rest as the engine
    writes them (the text unchanged for ``settled_s``)."""
    text, since, started = "", time.monotonic(), time.monotonic()
    while time.monotonic() - started < most_s:
        now: str = page.evaluate(f"() => {{ const g = document.querySelector('{GHOST}');"
                                 " return g ? g.textContent : ''; }")
        if now != text:
            text, since = now, time.monotonic()
        elif time.monotonic() - since >= settled_s:
            break
        page.wait_for_timeout(250)
    return text


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_real_coder_suggests_a_column_as_ghost_text_and_tab_inserts_it(
        real_lab: tuple[tuple[str, Path, str], Path], theme: str) -> None:
    lab, data = real_lab
    _, root, _ = lab
    name = f"completions_real_{theme}.ipynb"
    write_notebook(root / name, [SALES, ""])
    with open_lab_page(lab, name, width=1000, height=600) as page:
        set_theme(page, theme)
        _run_first_cell(page)
        page.locator(".jp-Cell .cm-content").last.click()
        page.keyboard.type(TYPED[theme], delay=40)
        page.wait_for_selector(f"{GHOST} >> visible=true", timeout=200_000)
        ghost = _streamed_ghost(page)
        assert any(column in ghost for column in COLUMNS), ghost
        page.wait_for_timeout(300)
        shot(page, ".jp-Notebook", f"completions_real_ghost_{theme}.png")
        page.keyboard.press("Tab")
        source: Any = page.evaluate("() => { const c = window.jupyterapp.shell.currentWidget.content.widgets;"
                                    " return c[c.length - 1].model.sharedModel.getSource(); }")
        assert source.startswith(TYPED[theme]) and ghost.strip() in source, (source, ghost)
    rows = [r for r in Ledger(data / LEDGER_FILE).rows() if r.api == COMPLETION_KIND]
    assert rows and all(r.model == LOCAL_CHAT_MODEL for r in rows)

"""JupyterLab in headless Chromium, light and dark: ``%%qfchat --tools`` waits on its Run / Skip
confirmation, a click on Run runs the notebook function and the loop ends in the model's answer;
a schema batch lands in a DataFrame (one column per field, an error column). Screenshots go to
artifacts/screenshots/agents_*.png.

The model is a chat double (``ScriptedChatBackend``: a ``function_call``, then text) and the batch's
``ChatCompletion.ado`` a double answering JSON, so no model is needed; the widgets and the
DataFrame are the real ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser_kit import RUN_ALL_CELLS, SHOTS, low_contrast, set_theme, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

CELLS = [
    "%load_ext qfnb\n"
    "from nb_doubles import ScriptedChatBackend, function_call\n"
    "get_ipython().magics_manager.registry['QfnbMagics'].chat_backend = ScriptedChatBackend(\n"
    "    [function_call('get_weather', city='Paris'), {'result': 'It is **17 °C** with light rain in Paris.'}])\n"
    "def get_weather(city: str) -> dict:\n"
    "    '''Current weather for a city.'''\n"
    "    return {'city': city, 'temp_c': 17, 'sky': 'light rain'}",
    "%%qfchat --tools get_weather -o ans\nWhat's the weather in Paris?",
    "from typing import Literal\nfrom pydantic import BaseModel\nfrom nb_doubles import structured_ado\n"
    "from qfnb.resources import ChatCompletion\nfrom qfnb.resources.structured import response_format\n"
    "class Ticket(BaseModel):\n    label: Literal['bug', 'feature', 'question']\n    summary: str\n"
    "ChatCompletion.ado = structured_ado({'crash': {'label': 'bug', 'summary': 'crashes on save'},\n"
    "    'dark': {'label': 'feature', 'summary': 'a dark mode'}, 'how': {'label': 'question', 'summary': 'export?'}})\n"
    "reports = ['the app crashes on save', 'please add dark mode', 'how do I export?', 'asdf']\n"
    "future = ChatCompletion(model='Qwen2.5-Coder-0.5B-Instruct').batch_do(\n"
    "    [[{'role': 'user', 'content': r}] for r in reports], response_format=response_format(Ticket))\n"
    "future.to_dataframe(Ticket)",
]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_tools_confirmation_and_schema_batch(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    name = f"agents_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1100, height=1400) as page:
        try:
            set_theme(page, theme)
            page.evaluate(RUN_ALL_CELLS)
            cells = page.locator(".jp-Notebook .jp-Cell")
            tools = cells.nth(1).locator(".qfnb-tools")
            run = tools.locator("button", has_text="Run")
            run.wait_for(timeout=90_000)
            asking = tools.inner_text()
            assert 'Run get_weather({"city": "Paris"})?' in asking and "waiting" in asking, asking
            assert "Skip" in asking
            cells.nth(1).screenshot(path=str(SHOTS / f"agents_tools_confirm_{theme}.png"))
            low = low_contrast(page, ".qfnb-tools p, .qfnb-tools span, .qfnb-tools code")
            run.click()
            tools.get_by_text("with light rain in Paris").wait_for(timeout=30_000)
            done = tools.inner_text()
            assert '→ {"city": "Paris", "temp_c": 17, "sky": "light rain"}' in done, done
            assert "1 tool call(s), 2 step(s)" in done and not run.is_visible(), done
            cells.nth(1).screenshot(path=str(SHOTS / f"agents_tools_done_{theme}.png"))
            low += low_contrast(page, ".qfnb-tools p, .qfnb-tools sub, .qfnb-tools code")
            frame = cells.nth(2).locator(".jp-OutputArea-output table.dataframe")
            frame.wait_for(timeout=60_000)
            table = frame.inner_text()
            header = table.split("\n")[0]
            assert "label" in header and "summary" in header and "error" in header, table
            assert "crashes on save" in table and "a dark mode" in table, table
            assert "does not match Ticket" in table, table  # the row the double had no answer for
            cells.nth(2).scroll_into_view_if_needed()
            cells.nth(2).screenshot(path=str(SHOTS / f"agents_schema_batch_{theme}.png"))
        except Exception:
            page.screenshot(path=str(SHOTS / f"agents_failure_{theme}.png"), full_page=True)
            raise
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

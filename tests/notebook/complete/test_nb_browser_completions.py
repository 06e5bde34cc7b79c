"""Inline completions in JupyterLab (light (slow) and dark) and Notebook 7 (dark) with headless
Chromium: one Jupyter server serving both, on a daemon whose coder is an engine double
(``complete_doubles.FakeCoderRegistry``: it fills in the middle from the context it is given). Ghost
text appears after typing in a cell and Tab inserts it; ``df[`` after a cell that built ``df``
suggests one of its columns (the kernel's names reached the engine); typing on withdraws the request
in flight (counted at the daemon); a suggestion is shown as text, never as HTML; ``%qfcomplete off``
stops them and the editor says why; the ledger and ``/metrics`` count the completions; and no key of
the daemon is in any request or response of the page. Screenshots: artifacts/screenshots/completions_*.png.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_kit import SHOTS, jupyter_lab, set_theme, write_notebook
from test_nb_browser import needs_chromium, open_lab_page
from test_nb_browser_restart import KERNEL_IDLE

from qfnb._core.backend import daemon
from qfnb._core.backend.discovery import read_runtime
from qfnb._core.record.ledger import LEDGER_FILE, Ledger
from qfnb.notebook.complete.spending import WITHDRAWN_JOB
from qfnb.protocol.wires.local.completion import COMPLETION_KIND

pytestmark = [pytest.mark.browser, needs_chromium]

REGISTRY = ["--registry", "tests.notebook.complete_doubles:FakeCoderRegistry"]
SETTINGS = {"providers": {"@qfnb/inline-completer": {"model": "Fake-Coder", "debouncerDelay": 150}}}
CELLS = ["import pandas as pd\ndf = pd.DataFrame({'city': ['Oslo', 'Lima'], 'sales': [3, 4]})", ""]
GHOST = ".jp-GhostText"


@pytest.fixture(scope="module")
def coder_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, Path, str], Path, list[str]]]:
    """A Lab whose server extension reaches a daemon serving the Fake-Coder double, chosen in the
    Inline Completer's settings."""
    base = tmp_path_factory.mktemp("completions")
    root, data = base / "lab", base / "data"
    settings = root / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "completer-extension"
    settings.mkdir(parents=True)
    (settings / "inline-completer.jupyterlab-settings").write_text(json.dumps(SETTINGS))
    platform = daemon.ensure_daemon(data, serve_args=REGISTRY)
    info = read_runtime(data)
    assert info is not None
    secrets = [platform.api_key, platform.secret_key, platform.access_key, platform.iam_secret_key, info.control_token]
    try:
        with jupyter_lab(root, both=True, QFNB_DATA_DIR=str(data), QIANFAN_CACHE_DIR=str(data / "cache")) as lab:
            yield lab, data, [s for s in secrets if s]
    finally:
        daemon.stop_daemon(data, force=True)


def _metric(data: Path, name: str, route: str | None = None) -> float:
    info = read_runtime(data)
    assert info is not None
    text = httpx.get(info.url + "/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (route is None or f'route="{route}"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _last_row(data: Path, what: str, after: float = 0.0) -> Any:
    """The ledger's newest completion row after ``after`` (the Jupyter server writes its rows a moment later)."""
    for _ in range(50):
        rows = [r for r in Ledger(data / LEDGER_FILE).rows() if r.api == COMPLETION_KIND and r.ts > after]
        if rows:
            return rows[-1]
        time.sleep(0.2)
    raise AssertionError(f"no ledger row for the {what} completion")


def _type_and_wait_for_ghost(page: Any, text: str) -> str:
    page.keyboard.type(text, delay=40)
    page.wait_for_selector(f"{GHOST} >> visible=true", timeout=30_000)
    ghost: str = page.locator(GHOST).first.inner_text()
    return ghost


def _last_source(page: Any) -> str:
    source: str = page.evaluate(
        "() => { const cells = window.jupyterapp.shell.currentWidget.content.widgets;"
        " return cells[cells.length - 1].model.sharedModel.getSource(); }")
    return source


def _run_first_cell(page: Any) -> None:
    """Run the notebook's first cell (it builds ``df``) and wait for its kernel to be idle again."""
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = 0;"
                  " window.jupyterapp.commands.execute('notebook:run-cell'); }")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.widgets[0].model.executionCount"
                           " === 1", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)


def _column_then_tab(page: Any, shot: str) -> None:
    """``df[`` typed in the last cell, after the cell that built ``df``: one of its columns as
    ghost text (screenshot ``shot``), and Tab inserts it."""
    page.locator(".jp-Cell .cm-content").last.click()
    ghost = _type_and_wait_for_ghost(page, "df[")
    assert ghost.strip() == "'city']", ghost
    page.wait_for_timeout(300)
    page.locator(".jp-Cell").last.screenshot(path=str(SHOTS / shot))
    page.keyboard.press("Tab")
    page.wait_for_function("() => { const c = window.jupyterapp.shell.currentWidget.content.widgets;"
                           " return c[c.length - 1].model.sharedModel.getSource() === \"df['city']\"; }",
                           timeout=10_000)


def test_the_route_is_under_the_servers_token_and_xsrf_check(
        coder_lab: tuple[tuple[str, Path, str], Path, list[str]]) -> None:
    (base, _, token), data, _ = coder_lab
    body = {"prefix": "x = ", "suffix": "", "cells": [], "model": "Fake-Coder"}
    route, auth = f"{base}/qfnb/inline-completions", {"Authorization": f"token {token}"}
    assert httpx.post(route, json=body, timeout=60).status_code == 403  # no token, no XSRF
    cookies = {"_xsrf": "abc"}  # a cookie without its header is refused too
    assert httpx.post(route, json=body, cookies=cookies, timeout=60).status_code == 403
    answer = httpx.post(route, json=body, headers=auth, timeout=60)
    assert answer.status_code == 200 and answer.json()["items"] == [{"insertText": "total = 0"}]
    bad = httpx.post(route, json={**body, "maxTokens": "many"}, headers=auth, timeout=60)
    assert bad.status_code == 400 and "maxTokens" in bad.text
    unknown = httpx.post(route, json={**body, "dailyCap": 10**9}, headers=auth, timeout=60)
    assert unknown.status_code == 400 and "dailyCap" in unknown.text  # a typed body: no field it does not know
    markdown = httpx.post(route, json={**body, "cellType": "markdown"}, headers=auth, timeout=60)
    assert markdown.json() == {"items": []}
    # the streamed route: lines of JSON, the whole suggestion so far each, then the last
    streamed = httpx.post(f"{route}/stream", json={**body, "prefix": "y = "}, headers=auth, timeout=60)
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert lines[-1] == {"done": True, "text": "total = 0", "model": "Fake-Coder"}
    assert all(line["text"] for line in lines)
    # past its deadline (3/4 of the editor's timeout) nothing more is computed. Nothing shown by then
    # (a 0.4 s timeout: the double's first token comes after 1 s): late, withdrawn, not billed as shown
    sent = time.time()
    late = httpx.post(f"{route}/stream", json={**body, "prefix": "slow = ", "timeout": 400}, headers=auth, timeout=60)
    said = "the suggestion was not written within 0.3 s (withdrawn)"
    assert [json.loads(line) for line in late.text.splitlines()] == [
        {"done": True, "text": "", "notice": "late", "message": said}]
    row = _last_row(data, "slow", after=sent)
    assert row.job == WITHDRAWN_JOB and row.completion_tokens == 0
    # what showed in time (a 4 s timeout: x, xx, ...) is the suggestion, cut there and billed as shown
    cut = httpx.post(f"{route}/stream", json={**body, "prefix": "slow = ", "timeout": 4000}, headers=auth,
                     timeout=60)
    lines = [json.loads(line) for line in cut.text.splitlines()]
    shown = [line["text"] for line in lines[:-1]]
    assert shown and shown == ["x" * (n + 1) for n in range(len(shown))]  # one token a second
    assert lines[-1] == {"done": True, "text": shown[-1], "notice": "cut"}
    row = _last_row(data, "slow", after=row.ts)
    assert row.job == COMPLETION_KIND and row.completion_tokens == len(shown)


@pytest.mark.parametrize("theme", [pytest.param("light", marks=pytest.mark.slow), "dark"])
def test_ghost_text_from_the_notebook_tab_inserts_it_and_typing_on_withdraws(
        coder_lab: tuple[tuple[str, Path, str], Path, list[str]], theme: str) -> None:
    lab, data, secrets = coder_lab
    _, root, _ = lab
    name = f"completions_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    assert len(secrets) >= 4
    traffic: list[str] = []
    with open_lab_page(lab, name, width=1100, height=700) as page:
        def note_request(request: Any) -> None:
            traffic.append(f"{request.url}\n{json.dumps(request.headers)}\n{request.post_data or ''}")

        def note_response(response: Any) -> None:
            if "/api/" in response.url or "/qfnb/" in response.url:
                try:
                    traffic.append(f"{response.url}\n{json.dumps(response.headers)}\n{response.text()}")
                except Exception:  # a redirect or a body already gone: its headers were noted
                    traffic.append(f"{response.url}\n{json.dumps(response.headers)}")

        page.on("request", note_request)
        page.on("response", note_response)
        set_theme(page, theme)
        _run_first_cell(page)
        _column_then_tab(page, f"completions_ghost_{theme}.png")

        # a request in flight that the user types past is withdrawn at the platform
        withdrawn = _metric(data, "qfnb_completions_withdrawn")
        page.keyboard.press("End")
        page.keyboard.type("\nx = slow", delay=40)
        page.wait_for_timeout(1500)  # past the debounce: the slow request is at the engine
        page.keyboard.type("er", delay=40)
        for _ in range(40):
            if _metric(data, "qfnb_completions_withdrawn") > withdrawn:
                break
            page.wait_for_timeout(250)
        assert _metric(data, "qfnb_completions_withdrawn") > withdrawn

        # a suggestion is text: markup in it is shown as characters, never made into elements
        page.keyboard.type("\nhtml = ", delay=40)
        page.wait_for_selector(f"{GHOST} >> visible=true", timeout=30_000)
        assert page.locator(f"{GHOST} b, {GHOST} img").count() == 0
        assert "<b>" in page.locator(GHOST).first.inner_text()
        page.locator(".jp-Notebook").screenshot(path=str(SHOTS / f"completions_markup_as_text_{theme}.png"))
        page.keyboard.press("Escape")

        # %qfcomplete off reaches the server: nothing is sent, and the editor says why (once)
        if theme == "dark":
            page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                          " nb.model.sharedModel.insertCell(0, {cell_type: 'code', source: '%load_ext qfnb\\n"
                          "%qfcomplete off'}); nb.activeCellIndex = 0;"
                          " window.jupyterapp.commands.execute('notebook:run-cell'); }")
            page.wait_for_selector(".jp-OutputArea-output >> text=inline completions: off", timeout=60_000)
            page.locator(".jp-Cell .cm-content").last.click()
            page.keyboard.press("Control+End")
            page.keyboard.type("\ny = ", delay=40)
            page.wait_for_selector(".jp-toast-message >> text=%qfcomplete on", timeout=30_000)
            assert page.locator(f"{GHOST} >> visible=true").count() == 0
            page.screenshot(path=str(SHOTS / "completions_off_notice_dark.png"))
            page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                          " nb.model.sharedModel.getCell(0).setSource('%qfcomplete on'); nb.activeCellIndex = 0;"
                          " window.jupyterapp.commands.execute('notebook:run-cell'); }")
            page.wait_for_selector(".jp-OutputArea-output >> text=inline completions: on", timeout=60_000)

    # every completion the engine answered is a call of its own kind in the ledger and /metrics; the one
    # typed past is written as withdrawn, never as shown
    rows = [r for r in Ledger(data / LEDGER_FILE).rows() if r.api == COMPLETION_KIND]
    shown = [r for r in rows if r.job == COMPLETION_KIND]
    assert shown and all(r.model == "Fake-Coder" for r in shown)
    assert any(r.job == WITHDRAWN_JOB for r in rows)
    assert _metric(data, "qfnb_requests", route="/qfnb/complete") >= len(shown)
    # the daemon's keys never reached the page
    assert any("/qfnb/inline-completions" in t for t in traffic)
    for secret in secrets:
        assert not any(secret in t for t in traffic), "a daemon key is in the page's traffic"
    assert not any(re.search(r"bce-auth-v1/", t) for t in traffic)


def test_ghost_text_in_notebook_7_and_tab_inserts_it(
        coder_lab: tuple[tuple[str, Path, str], Path, list[str]]) -> None:
    """The same provider in Notebook 7's notebook page (the same server, dark theme)."""
    lab, _, _ = coder_lab
    _, root, _ = lab
    name = "completions_notebook7.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1100, height=700, path="notebooks") as page:
        assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
        set_theme(page, "dark")
        _run_first_cell(page)
        _column_then_tab(page, "completions_ghost_notebook7_dark.png")


def _ghost_text(page: Any) -> str:
    found: str = page.evaluate(f"() => {{ const g = document.querySelector('{GHOST}');"
                               " return g ? g.textContent : ''; }")
    return found


def test_streamed_ghost_text_grows_as_the_engine_writes_and_a_markdown_cell_gets_none(
        coder_lab: tuple[tuple[str, Path, str], Path, list[str]]) -> None:
    """The suggestion is streamed: its first token shows as ghost text, and the ghost text grows while
    the engine writes the rest (the double writes one ``x`` a second). A Markdown cell is not completed."""
    lab, data, _ = coder_lab
    _, root, _ = lab
    name = "completions_streamed.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1100, height=700) as page:
        set_theme(page, "dark")
        _run_first_cell(page)
        page.locator(".jp-Cell .cm-content").last.click()
        page.keyboard.type("slow = ", delay=40)
        page.wait_for_selector(f"{GHOST} >> visible=true", timeout=30_000)
        first = _ghost_text(page)
        page.locator(".jp-Cell").last.screenshot(path=str(SHOTS / "completions_streamed_first_dark.png"))
        page.wait_for_timeout(3500)
        later = _ghost_text(page)
        page.locator(".jp-Cell").last.screenshot(path=str(SHOTS / "completions_streamed_later_dark.png"))
        assert first.startswith("x") and later.startswith(first) and len(later) >= len(first) + 2, (first, later)
        page.keyboard.press("Escape")

        # a Markdown cell: nothing asked, nothing shown
        asked = len(Ledger(data / LEDGER_FILE).rows())
        page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                      " nb.model.sharedModel.insertCell(nb.widgets.length, {cell_type: 'markdown', source: ''});"
                      " nb.activeCellIndex = nb.widgets.length - 1; nb.mode = 'edit'; }")
        page.locator(".jp-MarkdownCell .cm-content").last.click()
        page.keyboard.type("The totals by city: df[", delay=40)
        page.wait_for_timeout(2500)
        assert page.locator(f".jp-MarkdownCell {GHOST} >> visible=true").count() == 0
        page.locator(".jp-Notebook").screenshot(path=str(SHOTS / "completions_markdown_none_dark.png"))
    after = [r for r in Ledger(data / LEDGER_FILE).rows()[asked:] if r.job == COMPLETION_KIND]
    assert not after  # (the streamed one may end as withdrawn at its deadline; no completion was made)

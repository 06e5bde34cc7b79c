"""The XSS corpus (tests/notebook/data/xss_payloads.txt) through every HTML view of qfnb in headless
Chromium, light and dark: live in JupyterLab (a real ``%%qfchat`` streaming it, side by side,
``--tools --yes``, ``%qfchat history``, and every view of xss_surfaces.SURFACES, widgets included),
again after the saved notebook is reopened, and in nbconvert's HTML export. Each payload would call
alert/confirm/prompt/print or log QFNB-XSS if it ran: the page counts them. 0 executions."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_kit import SHOTS, jupyter_lab, set_theme, write_notebook
from nbconvert import HTMLExporter
from test_nb_browser import RUN_ALL, SAVE, open_lab_page
from xss_surfaces import payloads

from tests.fakes.local_platform import served_platform

# about 4 min a theme (151 payloads through every view, live, reopened and exported): beyond the suite's budget
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

#: runs before any page script: every way a payload reports itself is counted, none blocks
TRAP = """() => {
  window.qfnbXss = [];
  for (const name of ['alert', 'confirm', 'prompt', 'print']) {
    window[name] = (...args) => { window.qfnbXss.push(name + ':' + String(args[0])); };
  }
}"""
#: what a page holds that could still run (in outputs only): a script node, a handler, a script URL
LIVE_NODES = """() => [...document.querySelectorAll(
    '.jp-OutputArea-output script, .jp-OutputArea-output [onerror], .jp-OutputArea-output [onload], '
  + '.jp-OutputArea-output [onclick], .jp-OutputArea-output [onmouseover], .jp-OutputArea-output [onfocus], '
  + '.jp-OutputArea-output [ontoggle], .jp-OutputArea-output iframe, .jp-OutputArea-output object, '
  + '.jp-OutputArea-output embed, .jp-OutputArea-output a[href^="javascript" i]')].map(e => e.outerHTML.slice(0, 80))"""

CORPUS = "\n\n".join(payloads())
CELLS = [
    "%load_ext qfnb\nfrom nb_doubles import FakeChatBackend, ScriptedChatBackend, function_call\n"
    "from xss_surfaces import payloads, show_all, SURFACES\n"
    "m = get_ipython().magics_manager.registry['QfnbMagics']\n"
    "CORPUS = '\\n\\n'.join(payloads())\n"
    "m.chat_backend = FakeChatBackend(CORPUS, chunk=400)",
    "%%qfchat -s xss\nTell me something",
    "%%qfchat -m a,b\nTwo columns",
    "%qfchat history xss",
    "def lookup(query: str) -> str:\n    \"\"\"Look it up.\"\"\"\n    return CORPUS\n"
    "m.chat_backend = ScriptedChatBackend([function_call('lookup', query=CORPUS), {'result': CORPUS}])",
    "%%qfchat --tools lookup --yes\nLook it up",
    "show_all(CORPUS)",
    *(f"for p in payloads()[{i}:{i + 40}]:\n    display(SURFACES['chat_single'](p))"  # JupyterLab shows 50 a cell
      for i in range(0, len(payloads()), 40)),
    "print('corpus done')",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """JupyterLab with every cell in the DOM (no windowing; no cell shows more than the 50 outputs
    JupyterLab shows before "Show more outputs"): the whole page is checked, not what happens to
    be scrolled into view."""
    root = tmp_path_factory.mktemp("xss-lab")
    tracker = root / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    with jupyter_lab(root) as running:
        yield running


def _count(page: Any) -> tuple[list[str], list[str]]:
    return page.evaluate("() => window.qfnbXss || []"), page.evaluate(LIVE_NODES)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_corpus_runs_nowhere_live_reopened_or_exported(lab: tuple[str, Path, str], theme: str,
                                                          tmp_path: Path) -> None:
    _, root, _ = lab
    name = f"xss_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    logged: list[str] = []
    dialogs: list[str] = []
    with open_lab_page(lab, name, width=1280, height=1400) as page:
        page.on("console", lambda msg: logged.append(msg.text) if "QFNB-XSS" in msg.text else None)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.add_init_script(f"({TRAP})()")  # for the reload below
        page.evaluate(TRAP)
        set_theme(page, theme)
        page.evaluate(RUN_ALL)
        page.wait_for_function("() => window.qfnbRunAll !== undefined", polling=1000, timeout=240_000)
        assert page.evaluate("() => window.qfnbRunAll"), page.locator(".jp-OutputArea-output").all_inner_texts()[-3:]
        try:
            page.wait_for_selector(".jp-OutputArea-output >> text=corpus done", timeout=120_000)
        except Exception:
            page.screenshot(path=str(SHOTS / f"xss_failed_{theme}.png"))
            texts = page.locator(".jp-OutputArea-output").all_inner_texts()
            raise AssertionError([t[:300] for t in texts if "Traceback" in t][:5] or texts[-3:]) from None
        page.wait_for_timeout(3000)  # images fail to load, handlers would fire
        page.screenshot(path=str(SHOTS / f"xss_live_{theme}.png"))
        calls, nodes = _count(page)
        assert (calls, nodes, dialogs, logged) == ([], [], [], []), "live"
        texts = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
        assert "onerror=alert(1)" in texts, "the payloads show as text"
        assert page.evaluate(SAVE)
        # reopened: the saved outputs rendered again
        page.reload()
        page.wait_for_selector(".jp-OutputArea-output >> text=corpus done", timeout=180_000)  # a loaded machine
        page.wait_for_timeout(3000)
        calls, nodes = _count(page)
        assert (calls, nodes, dialogs, logged) == ([], [], [], []), "reopened"
    # exported: nbconvert's HTML of the saved notebook, in its light or dark theme
    nb = nbformat.read(root / name, as_version=4)
    assert not any("text/markdown" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    page_html, _ = HTMLExporter(theme=theme).from_notebook_node(nb)
    exported = tmp_path / f"xss_{theme}.html"
    exported.write_text(page_html, encoding="utf-8")
    _open_export(exported, theme)


def _open_export(path: Path, theme: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            logged: list[str] = []
            dialogs: list[str] = []
            page.on("console", lambda msg: logged.append(msg.text) if "QFNB-XSS" in msg.text else None)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.add_init_script(f"({TRAP})()")
            page.goto(path.as_uri())
            page.wait_for_timeout(4000)
            page.screenshot(path=str(SHOTS / f"xss_export_{theme}.png"))
            calls, nodes = _count(page)
            assert (calls, nodes, dialogs, logged) == ([], [], [], []), "exported"
            assert "onerror=alert(1)" in page.inner_text("body")
        finally:
            browser.close()



#: the whole page (not only outputs): a page of the platform's own is a text or JSON document
PAGE_NODES = """() => [...document.querySelectorAll(
    'script, iframe, object, embed, img, svg, [onerror], [onload], [onclick], a[href^="javascript" i]')]
    .map(e => e.outerHTML.slice(0, 80))"""


def test_the_platforms_metrics_and_stored_completions_run_nothing_in_a_browser(tmp_path: Path) -> None:
    """``/metrics`` (Prometheus text) and OpenAI's stored chat completions (JSON: one, its messages, a
    list by metadata), opened in Chromium with the corpus in the stored messages and metadata and sent
    as model names: each page is a plain text or JSON document that shows the payloads as text."""
    from urllib.parse import urlencode

    import httpx
    from playwright.sync_api import sync_playwright

    corpus = payloads()
    with served_platform(tmp_path / "data") as served:
        key = served.bearer_token()
        auth = {"Authorization": f"Bearer {key}"}
        for bad_model in corpus[:10]:  # unknown models: refused, and counted (or not) by /metrics
            httpx.post(served.url + "/v1/chat/completions", headers=auth, timeout=30,
                       json={"model": bad_model, "messages": [{"role": "user", "content": bad_model}]})
        made = httpx.post(served.url + "/v1/chat/completions", headers=auth, timeout=30, json={
            "model": "tiny-chat", "store": True, "messages": [{"role": "user", "content": CORPUS}],
            "metadata": {f"k{i}": p[:512] for i, p in enumerate(corpus[:16])}})
        assert made.status_code == 200, made.text
        stored = made.json()["id"]
        pages = {"metrics": "/metrics", "stored": f"/v1/chat/completions/{stored}",
                 "messages": f"/v1/chat/completions/{stored}/messages",
                 "listed": "/v1/chat/completions?" + urlencode({"metadata[k0]": corpus[0][:512]})}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400}, extra_http_headers=auth)
                logged: list[str] = []
                dialogs: list[str] = []
                page.on("console", lambda msg: logged.append(msg.text) if "QFNB-XSS" in msg.text else None)
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.add_init_script(f"({TRAP})()")
                for name, path in pages.items():
                    answer = page.goto(served.url + path)
                    assert answer is not None and answer.status == 200, (name, answer and answer.text()[:300])
                    kind = answer.headers["content-type"]
                    assert kind.startswith("application/json" if name != "metrics" else "text/plain"), (name, kind)
                    page.wait_for_timeout(1500)  # images would fail to load, handlers would fire
                    page.screenshot(path=str(SHOTS / f"xss_served_{name}.png"))
                    calls, nodes = page.evaluate("() => window.qfnbXss || []"), page.evaluate(PAGE_NODES)
                    assert (calls, nodes, dialogs, logged) == ([], [], [], []), name
                    if name != "metrics":
                        assert "onerror=alert(1)" in page.inner_text("body"), name
            finally:
                browser.close()

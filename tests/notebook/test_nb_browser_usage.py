"""JupyterLab in headless Chromium, light and dark theme: a replayed ``%%qfchat`` answer's "↺ cached"
badge, ``%qfusage`` (by model and by job, a fine-tune's trained tokens and a reused run among them)
and ``%qfcache stats``, with screenshots in artifacts/screenshots/ and the badge's contrast checked by
computed style (WCAG AA, >= 4.5:1). The chat uses the notebook doubles; the ledger rows are written
by the notebook itself (no models needed)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from browser_kit import BACKGROUND_OF, RUN_ALL_CELLS, SHOTS, contrast, low_contrast, set_theme, shot, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

CELLS = [
    "%load_ext qfnb\nfrom types import SimpleNamespace\nfrom nb_doubles import FakeChatBackend\n"
    "from qfnb.notebook.chat.answer import ChatDelta\n"
    "class Replayed(FakeChatBackend):\n"
    "    async def stream(self, request):\n"
    "        async for d in super().stream(request):\n"
    "            done = d.usage is not None\n"
    "            prov = {'cache': {'hit': True, 'age_s': 180.0}} if done else {}\n"
    "            yield ChatDelta(d.text, d.usage, SimpleNamespace(provenance=prov, body=d.response))\n"
    "m = get_ipython().magics_manager.registry['QfnbMagics']\n"
    "m.chat_backend = Replayed('LoRA trains small low-rank matrices beside a frozen model.', chunk=8)",
    "%%qfchat -m Gemma-3-270M\nWhat is LoRA?",
    "from qfnb._core.record.ledger import UsageRow, default_ledger, job\n"
    "L = default_ledger()\n"
    "for hit in (False, True, True):\n"
    "    L.record(UsageRow(api='chat', model='Qwen2.5-Coder-0.5B-Instruct', platform='local', prompt_tokens=21,"
    " completion_tokens=34, total_tokens=55, latency_s=0.8, cache_hit=hit))\n"
    "with job('evaluation 1a2b3c4d'):\n"
    "    for _ in range(4):\n"
    "        L.record(UsageRow(api='chat', model='ERNIE-3.5-8K', platform='cloud', prompt_tokens=120,"
    " completion_tokens=40, total_tokens=160, latency_s=1.2))\n"
    "for hit in (False, True):\n"
    "    L.record(UsageRow(api='fine-tune', model='Gemma-3-270M', platform='local', trained_tokens=5120,"
    " cache_hit=hit, job='fine-tune task-7'))",
    "%qfusage --by model",
    "%qfusage --by job",
    "%qfcache stats",
]


BADGE = """() => {
  """ + BACKGROUND_OF + """
  const el = [...document.querySelectorAll('.qfnb-cached')].pop();
  return {text: el.textContent, fg: getComputedStyle(el).color, bg: bg(el)};
}"""


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_cached_badge_and_qfusage_in_both_themes(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    name = f"usage_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1700, height=1400) as page:  # wide: %qfusage's table unclipped
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        page.wait_for_selector(".qfnb-cached", timeout=60_000)
        page.wait_for_selector(".qfnb-cache-stats", timeout=60_000)
        page.wait_for_timeout(800)
        news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "notified about news?" toast
        if news.count():
            news.first.click()
            page.wait_for_timeout(300)
        shot(page, ".jp-Cell >> nth=1", f"chat_cached_badge_{theme}.png")
        shot(page, ".jp-Cell >> nth=3", f"qfusage_by_model_{theme}.png")
        shot(page, ".jp-Cell >> nth=4", f"qfusage_by_job_{theme}.png")
        shot(page, ".jp-Cell >> nth=5", f"qfcache_stats_{theme}.png")
        badge: dict[str, Any] = page.evaluate(BADGE)
        by_model = page.locator(".jp-Cell").nth(3).locator(".jp-OutputArea").inner_text()
        by_job = page.locator(".jp-Cell").nth(4).locator(".jp-OutputArea").inner_text()
    assert "↺ cached · 3 min ago" in badge["text"] and "--fresh" in badge["text"], badge
    assert contrast(badge["fg"], badge["bg"]) >= 4.5, badge
    assert "trained_tokens" in by_model and "5120" in by_model and "Gemma-3-270M" in by_model, by_model
    assert "fine-tune task-7" in by_job and "evaluation 1a2b3c4d" in by_job, by_job


TRACE_CELLS = [
    "%load_ext qfnb\nimport os, tempfile\nfrom pathlib import Path\nimport pytest\n"
    "data = Path(tempfile.mkdtemp(prefix='qftrace-'))\nos.environ['QFNB_DATA_DIR'] = str(data)\n"
    "from tests.fakes.local_platform import served_platform\n"
    "platform = served_platform(data)\nserved = platform.__enter__()  # the in-process local platform, embedded\n"
    "served.as_default_backend(pytest.MonkeyPatch())",
    "from qfnb.resources import ChatCompletion\n"
    "ChatCompletion().do(messages=[{'role': 'user', 'content': 'hello there'}])['result']",
    "from qfnb.agents import FunctionTool, StepReply, ToolLoop\n"
    "def ask_tiny(prompt: str) -> str:\n"
    "    '''Ask the small chat model.'''\n"
    "    return ChatCompletion().do(messages=[{'role': 'user', 'content': prompt}])['result']\n"
    "replies = iter([StepReply(calls=(('ask_tiny', '{\"prompt\": \"say ping\"}', 'c1'),)), StepReply(text='pong')])\n"
    "loop = ToolLoop(lambda m, t: next(replies), {'ask_tiny': FunctionTool.from_function(ask_tiny)},\n"
    "                [{'role': 'user', 'content': 'ping'}])\n"
    "loop.advance()\nserved.app.state.platform.meter.sink.flush()\nloop.answer",
    "%qftrace",
    "platform.__exit__(None, None, None)",
]


@pytest.mark.parametrize("theme", [pytest.param("light", marks=pytest.mark.slow), "dark"])
def test_qftrace_after_calls_in_both_themes(lab: tuple[str, Path, str], theme: str) -> None:
    """``%qftrace`` after a call and an agent's tool call that makes one (nested under it) on the
    in-process local platform: the waterfall's text readable in the theme (WCAG AA)."""
    _, root, _ = lab
    name = f"qftrace_{theme}.ipynb"
    write_notebook(root / name, TRACE_CELLS)
    with open_lab_page(lab, name, width=1500, height=1200) as page:
        try:
            set_theme(page, theme)
            page.evaluate(RUN_ALL_CELLS)
            page.wait_for_selector("table.qfnb-trace", timeout=120_000)
            page.wait_for_timeout(500)
            shot(page, ".jp-Cell >> nth=3", f"qftrace_{theme}.png")
            trace = page.locator(".jp-Cell").nth(3).locator(".jp-OutputArea").inner_text()
            low = low_contrast(page, ".qfnb-trace th, .qfnb-trace td, .qfnb-trace-scope, .qfnb-trace-total")
        except Exception:
            page.screenshot(path=str(SHOTS / f"qftrace_failure_{theme}.png"), full_page=True)
            raise
    assert "this kernel session" in trace and "3 calls" in trace, trace
    assert "execute_tool" in trace and "ask_tiny" in trace and "↳ chat" in trace, trace
    assert trace.count("tiny-chat") == 2 or trace.count("Tiny-Chat") == 2, trace
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

"""JupyterLab in headless Chromium, light and dark theme: chat streaming and Kernel -> Interrupt,
the dashboard through a run (live, then static), and the evaluation report, with screenshots in
artifacts/screenshots/ and the contrast of the highlighted best scores checked by computed style
(WCAG AA, >= 4.5:1). Model calls and training use the notebook doubles (no models needed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from browser_kit import RUN_ALL_CELLS, SHOTS, THEMES, contrast, set_theme, shot, write_notebook
from test_nb_browser import open_lab_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")]

ANSWER = "LoRA adds small trainable matrices to a frozen model, so **fine-tuning** is cheap. " * 3
CELLS = [
    "%load_ext qfnb\nfrom nb_doubles import FakeChatBackend, FakeTrainer\n"
    "m = get_ipython().magics_manager.registry['QfnbMagics']\n"
    f"m.chat_backend = FakeChatBackend({ANSWER!r}, chunk=4, delay=0.03)\n"
    "m.trainer_factory = lambda spec, h: FakeTrainer(spec, h, steps=40, step_time=0.12)",
    "%%qfchat -m Gemma-3-270M,Qwen2.5-Coder-0.5B-Instruct\nWhat is LoRA?",
    "%qftrain --dataset demo_qa_train.jsonl --steps 40 --eval-split 20 -o run",
    "run.wait(120).status",
    "from qfnb.evaluation import EvaluationResult\nimport pandas as pd\n"
    "def res(v):\n"
    "    s = pd.DataFrame({'llm': ['m'] * 2, 'index': [0, 1], 'input': ['What is the capital of Zorvia?', 'Hi'],"
    " 'reference': ['Quellstad is the capital of the planet Zorvia.', 'Hello!'],"
    " 'output': ['The capital of the planet Zorvia is Quellstad, a city ' * 6, 'Hello.'], 'error': [None] * 2,"
    " 'rouge_l': [v, v], 'bleu': [v / 2, v / 2]})\n"
    "    return EvaluationResult({'m': {'rouge_l': v, 'bleu': v / 2}}, s)\n"
    "runs = {'base': res(0.21), 'tuned': res(0.734)}",
    "%qfeval runs",
    "ids = list(range(8)) * 2\n"
    "s2 = pd.DataFrame({'llm': ['base'] * 8 + ['tuned'] * 8, 'index': ids,"
    " 'input': [f'Question {i} about Zorvia?' for i in ids], 'reference': ['Quellstad is the capital.'] * 16,"
    " 'output': ['I do not know.'] * 8 + ['Quellstad is the capital.'] * 7 + ['Quellstad.'], 'error': [None] * 16,"
    " 'rouge_l': [0.1, 0.2, 0.15, 0.05, 0.3, 0.2, 0.1, 0.25] + [1.0] * 7 + [0.5],"
    " 'accuracy': [0.0] * 8 + [1.0] * 7 + [0.0]})\n"
    "both = EvaluationResult({'base': {'rouge_l': 0.169, 'accuracy': 0.0},"
    " 'tuned': {'rouge_l': 0.938, 'accuracy': 0.875}}, s2, metric_columns=[['rouge_l', 'accuracy']])",
    "%qfeval both --compare base",
    "m.chat_backend = FakeChatBackend('token ' * 2000, chunk=1, delay=0.02)",
    "%%qfchat -o partial\nGo on forever",
]

CONTRAST = """() => {
  const bg = el => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor;
      if (c && c !== 'transparent' && !/^rgba\\(0, 0, 0, 0\\)$/.test(c)) return c; }
    return getComputedStyle(document.body).backgroundColor; };
  return [...document.querySelectorAll('.qfnb-eval td, .qfnb-eval th, .qfnb-samples td, .qfnb-status, '
                                       + '.qfnb-footer, .qfnb-chat b, .qfnb-compare td, .qfnb-compare li, '
                                       + '.qfnb-compare p')]
    .map(el => ({best: el.classList.contains('qfnb-best'), fg: getComputedStyle(el).color, bg: bg(el),
                 text: el.textContent.trim().slice(0, 20)}));
}"""


@pytest.mark.parametrize("theme", [t if t == "dark" else pytest.param(t, marks=pytest.mark.slow) for t in THEMES])
def test_themes_chat_interrupt_dashboard_report(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    name = f"themes_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    with open_lab_page(lab, name, width=1200, height=1400) as page:
        set_theme(page, theme)
        page.evaluate(RUN_ALL_CELLS)
        # the dashboard while it runs (the live widget), then its final static state
        page.wait_for_selector(".qfnb-dashboard >> text=step", timeout=60_000)
        page.wait_for_timeout(1500)
        shot(page, ".qfnb-dashboard", f"dashboard_running_{theme}.png")
        # finished: succeeded with Deploy to do, the widget stays (its button) until deployed
        page.wait_for_selector(".qfnb-dashboard >> text=succeeded", timeout=90_000)
        page.locator(".qfnb-dashboard button", has_text="Deploy").last.wait_for(state="visible", timeout=10_000)
        assert page.locator(".qfnb-dashboard button", has_text="Stop").last.is_hidden()
        shot(page, ".qfnb-dashboard", f"dashboard_finished_{theme}.png")
        # a validation split: the train and evaluation losses, both in the progress line (and the chart)
        dash_text = page.locator(".qfnb-dashboard").last.inner_text()
        assert re.search(r"loss \d\.\d{4} · eval loss \d\.\d{4}", dash_text), dash_text
        shot(page, ".qfnb-chat", f"chat_side_by_side_{theme}.png")
        page.wait_for_selector(".qfnb-compare", timeout=60_000)
        page.locator(".qfnb-eval-report summary").first.click()  # open the samples
        shot(page, ".qfnb-eval-report >> nth=0", f"eval_report_{theme}.png")
        page.locator(".qfnb-compare summary").first.click()  # open the flipped items
        shot(page, ".qfnb-compare", f"eval_compare_{theme}.png")
        compare_text = page.locator(".qfnb-compare").inner_text()
        # the first chat answered; the last one streams until Kernel -> Interrupt
        last = page.locator(".jp-Cell").last
        last.locator("text=token token token").wait_for(timeout=60_000)
        shot(page, ".jp-Cell >> nth=-1", f"chat_streaming_{theme}.png")
        page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:interrupt')")
        last.locator(".jp-OutputArea-output >> text=interrupted").first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        shot(page, ".jp-Cell >> nth=-1", f"chat_interrupted_{theme}.png")
        page.screenshot(path=str(SHOTS / f"themes_page_{theme}.png"), full_page=True)
        interrupted = last.locator(".jp-OutputArea").inner_text()
        chat = page.locator(".jp-Cell").nth(1)
        chat.scroll_into_view_if_needed()  # JupyterLab renders only the cells in view (windowing)
        chat.locator(".jp-OutputArea >> text=Gemma-3-270M").first.wait_for(timeout=30_000)
        chat_cell = ""
        for _ in range(30):  # read while in view: a report growing above can window the cell out again
            chat.scroll_into_view_if_needed()
            chat_cell = chat.locator(".jp-OutputArea").inner_text()
            if "Gemma-3-270M" in chat_cell and "Qwen2.5" in chat_cell:
                break
            page.wait_for_timeout(1_000)
        cells = page.evaluate(CONTRAST)
    assert "Traceback" not in interrupted and "threading.py" not in interrupted, interrupted
    assert "interrupted" in interrupted and "token token" in interrupted and "▌" not in interrupted
    assert "Gemma-3-270M" in chat_cell and "Qwen2.5" in chat_cell and "streaming…" not in chat_cell, chat_cell
    assert contrast("rgb(255, 255, 255)", "rgb(217, 242, 217)") < 1.5  # the white on pale green fails
    assert len(cells) > 20 and any(c["text"].startswith("Qwen2.5") for c in cells)  # tables, badges, chat
    best = [c for c in cells if c["best"]]
    assert len(best) == 4, cells  # rouge_l and bleu of the runs, rouge_l and accuracy of both: tuned is best
    assert "tuned beats base on rouge_l by +0.77" in compare_text, compare_text
    assert "7 item(s) flipped" in compare_text and "I do not know." in compare_text
    low = [(c["text"], c["fg"], c["bg"], round(contrast(c["fg"], c["bg"]), 2)) for c in cells
           if contrast(c["fg"], c["bg"]) < 4.5]
    assert not low, f"below WCAG AA 4.5:1 in the {theme} theme: {low}"

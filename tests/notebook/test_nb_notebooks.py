"""The tour notebooks run top to bottom on the embedded local platform (nbclient)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

pytestmark = pytest.mark.real_model


def execute(name: str, timeout: int, **env: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "saved without outputs"
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def text_of(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def find(nb: nbformat.NotebookNode, needle: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def test_quick_tour_runs() -> None:
    nb = execute("01_quick_tour.ipynb", timeout=600)
    assert text_of(find(nb, "print(type(answer)")).strip() == "ChatAnswer True"
    assert "tour: 2 exchange(s)" in text_of(find(nb, "%qfchat sessions"))
    assert "cat~kitten > cat~stocks: True" in text_of(find(nb, "similarity"))
    streamed = text_of(find(nb, "%%qfchat -o answer"))
    assert "tokens" in streamed and "streaming…" not in streamed  # the final update was kept
    assert "ChatCompletion: 4/4 (4 ok, 0 failed)" in text_of(find(nb, "batch_do"))


def test_finetune_notebook_runs() -> None:
    nb = execute("02_finetune_end_to_end.ipynb", timeout=1800, QFNB_TOUR_STEPS=os.environ.get("QFNB_TOUR_STEPS", "30"))
    assert text_of(find(nb, "run.wait(")).strip() == "succeeded"
    dash = text_of(find(nb, "%qftrain"))
    assert "[qftrain] Gemma-3-270M ← demo_sft.jsonl: succeeded" in dash
    report = text_of(find(nb, "%qfeval"))
    assert "base" in report and "tuned" in report and "rouge_l" in report

"""``nbcheck`` judges contract cells as ``pytest --nbval-lax`` does (same notebook, same verdicts)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import nbformat
from nbcheck import ROOT, compare_outputs, contract_mismatches, load_sanitizer, nbval_command, strip_outputs
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook, new_output

PATTERNS = load_sanitizer()


def stdout(text: str) -> nbformat.NotebookNode:
    return new_output("stream", name="stdout", text=text)


def result(text: str, **more: object) -> nbformat.NotebookNode:
    return new_output("execute_result", data={"text/plain": text, **more}, execution_count=3)


def test_streams_are_coalesced_and_timings_sanitized() -> None:
    got = [stdout("step 1 · elapsed 00:03\n"), stdout("done in 1.52 s\n")]
    assert compare_outputs(got, [stdout("step 1 · elapsed 01:07\ndone in 0.20 s\n")], PATTERNS) is None
    assert compare_outputs(got, [stdout("step 2 · elapsed 01:07\ndone in 0.20 s\n")], PATTERNS) is not None


def test_an_unexpected_output_field_fails() -> None:
    got = [stdout("succeeded\n"), new_output("stream", name="stderr", text="warning\n")]
    diff = compare_outputs(got, [stdout("succeeded\n")], PATTERNS)
    assert diff is not None and "stderr" in diff
    assert compare_outputs([], [stdout("succeeded\n")], PATTERNS) is not None


def test_widget_views_images_and_metadata_are_not_compared() -> None:
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    got = [result("bar", **{"application/vnd.jupyter.widget-view+json": view, "image/png": "AAAA"})]
    got[0].metadata = {"x": 1}
    assert compare_outputs(got, [result("bar")], PATTERNS) is None
    assert compare_outputs([result("baz")], [result("bar")], PATTERNS) is not None


def test_same_verdicts_as_nbval(tmp_path: Path) -> None:
    mark = "# NBVAL_CHECK_OUTPUT\n"
    reference = new_notebook(
        cells=[
            new_code_cell(mark + 'print("took 00:03")', outputs=[stdout("took 00:07\n")], execution_count=1),
            new_code_cell(mark + 'print("a")', outputs=[stdout("b\n")], execution_count=2),  # differs
            new_code_cell('print("not a contract")'),
            new_code_cell("'done'", metadata={"tags": ["nbval-check-output"]}, outputs=[result("'done'")],
                          execution_count=3),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = tmp_path / "contract.ipynb"
    nbformat.write(reference, path)
    proc = subprocess.run(nbval_command(path), cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=300)
    log = proc.stdout + proc.stderr
    assert re.search(r"\b1 failed, 3 passed\b", log) and "contract.ipynb::Cell 1" in log, log[-3000:]

    executed = strip_outputs(reference)
    NotebookClient(executed, timeout=60, kernel_name="python3").execute()
    problems = contract_mismatches(executed, reference)
    assert len(problems) == 1 and problems[0].startswith("code cell 1 "), problems

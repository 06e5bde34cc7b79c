"""The tour notebooks (a short variant: answers capped, ``QFNB_TOUR_STEPS`` 2), run twice with
``nbconvert --execute`` on one data dir: the second run asks no
model — counted at the platform (the daemon's ``modelCalls``), not in the client — takes a fraction
of the first run's time, and gives the same chat, batch, embedding and evaluation outputs.

The fine-tune is not trained again: ``%qftrain`` finds the platform's finished run of the same
recipe through the console API and reuses it, its published model and its serving endpoint (so the
chat cells that name that endpoint replay from the cache too). ``QFNB_TOUR_STEPS`` keeps the
fine-tune short. Timings and the "↺ cached" / "↺ reused" notes are the only differences allowed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbcheck import NOTEBOOKS, ROOT, errors

from qfnb._core.backend import daemon

log = logging.getLogger("qfnb.tests.tour_twice")

TOUR = [NOTEBOOKS / "01_quick_tour.ipynb", NOTEBOOKS / "02_finetune_end_to_end.ipynb"]
#: the short variant's cap on every answer (the fine-tune notebook's cells already cap theirs at 48)
MAX_TOKENS = 48
#: cells whose outputs must be identical on the replay: they show what models answered
ANSWER_CELLS = ("chat.do(", "%%qfchat", "batch_do(", "qfnb.Embedding()", "%qfeval", "result.compare(")
#: what may differ between two runs: timings, ages, the cache's and the replay's notes, widget ids
_VOLATILE = [
    (re.compile(r"\[\d+:\d+(:\d+)?, [^\]]*\]"), "[<t>]"),  # a progress bar's elapsed time and rate
    (re.compile(r"\d+(\.\d+)?\s*(s|ms|min|h)\b"), "<t>"),
    (re.compile(r" · ↺ cached[^\n]*"), ""),
    (re.compile(r"first token [^\n·]*"), ""),
    (re.compile(r"'?(latency|request_latency|first_token_latency|total_latency)'?:\s*[0-9.e-]+"), "<latency>"),
    (re.compile(r'"model_id":\s*"[0-9a-f]+"'), '"model_id": "<w>"'),
]


def short_variant(notebook: Path, out_dir: Path) -> Path:
    """The notebook with every answer capped at :data:`MAX_TOKENS` tokens (its ``%%qfchat`` cells,
    ``chat.do`` and ``batch_do``), so a loaded 2-core machine runs it in minutes: what is checked
    (calls, replay, identical answers) does not depend on how long the answers are."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        head, _, rest = cell.source.partition("\n")
        if head.startswith("%%qfchat") and "--max-tokens" not in head:
            cell.source = f"{head} --max-tokens {MAX_TOKENS}\n{rest}"
        cell.source = re.sub(r"(chat\.do\(messages=.*?)(\)\n)", rf"\1, max_output_tokens={MAX_TOKENS}\2",
                             cell.source, flags=re.S)
        cell.source = cell.source.replace("progress=True)", f"progress=True, max_output_tokens={MAX_TOKENS})")
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / notebook.name)
    return out_dir / notebook.name


def _execute(notebook: Path, out_dir: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=1200", "--KernelManager.transport=ipc",
         f"--KernelManager.ip={out_dir / 'kernel'}", "--output-dir", str(out_dir),
         str(notebook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    executed = nbformat.read(out_dir / notebook.name, as_version=4)
    assert not errors(executed), errors(executed)
    return time.monotonic() - started


def _answers(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Each answer cell's outputs as text, volatile parts masked."""
    out: dict[str, list[str]] = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or not any(k in cell.source for k in ANSWER_CELLS):
            continue
        texts = []
        for o in cell.outputs:
            data: Any = o.get("data") or {}
            text = o.get("text") or data.get("text/plain") or json.dumps(data.get("application/json") or "")
            for pattern, repl in _VOLATILE:
                text = pattern.sub(repl, str(text))
            texts.append(text)
        out[cell.source] = texts
    return out


@pytest.mark.real_model
@pytest.mark.slow
def test_the_tour_run_twice_makes_no_model_call_the_second_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "QFNB_DATA_DIR": str(data), "QFNB_TOUR_STEPS": os.environ.get("QFNB_TOUR_STEPS", "2"),
           "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'notebook'}"}
    runs = [tmp_path / "first", tmp_path / "second"]
    tour = [short_variant(nb, tmp_path / "tour") for nb in TOUR]
    try:
        first = sum(_execute(nb, runs[0], env) for nb in tour)
        before = daemon.daemon_status(data)
        assert before is not None and before.model_calls_total > 0, before
        second = sum(_execute(nb, runs[1], env) for nb in tour)
        after = daemon.daemon_status(data)
        assert after is not None and after.pid == before.pid, "the platform restarted between the runs"
    finally:
        daemon.stop_daemon(data, force=True)
    log.warning("tour: first run %.0f s, %d model calls (%s); second run %.0f s, %d model calls",
                first, before.model_calls_total, before.model_calls, second,
                after.model_calls_total - before.model_calls_total)
    assert after.model_calls == before.model_calls, (before.model_calls, after.model_calls)
    assert second < 0.5 * first, (first, second)
    for nb in TOUR:
        one, two = (_answers(nbformat.read(r / nb.name, as_version=4)) for r in runs)
        assert one and one == two, nb.name
    replayed = nbformat.read(runs[1] / TOUR[1].name, as_version=4)
    train = next(c for c in replayed.cells if c.cell_type == "code" and c.source.startswith("%qftrain"))
    assert "reused finished run" in json.dumps(train.outputs)

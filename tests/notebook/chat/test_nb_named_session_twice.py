"""A named-session notebook (``%%qfchat -s s1`` twice) run with ``nbconvert --execute`` twice on one
data dir, against a daemon of its own on the real engine: the second run makes no engine call (the
daemon's ``modelCalls`` and ``/metrics``' ``qfnb_requests`` both say so) and gives the same outputs;
then a notebook in a new kernel sends a new prompt to s1, and the engine is sent the earlier turns.
The same path with engine doubles, in-process and in the default suite:
test_nb_named_sessions.py::test_run_all_again_replays_a_named_session_and_a_new_prompt_continues_it."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pytest
from nbcheck import ROOT, errors
from nbformat.v4 import new_code_cell, new_notebook
from prometheus_client.parser import text_string_to_metric_families

from qfnb._core.backend import daemon
from qfnb.local.engines.llama.process.command import find_binary

log = logging.getLogger("qfnb.tests.named_session_twice")

pytestmark = [pytest.mark.real_model, pytest.mark.slow,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
SESSION = ["%load_ext qfnb", "%%qfchat -s s1 --max-tokens 24\nMy name is Lin.",
           "%%qfchat -s s1 --max-tokens 24\nWhat is my name?"]
GOES_ON = ["%load_ext qfnb", "%%qfchat -s s1 --max-tokens 24\nSay my name once more."]


def _write(cells: list[str], path: Path) -> Path:
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells], metadata=KERNEL), path)
    return path


def _execute(notebook: Path, out_dir: Path, env: dict[str, str]) -> list[str]:
    """The notebook run by ``jupyter nbconvert --execute``; each code cell's outputs as text."""
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=600", "--output-dir", str(out_dir), str(notebook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    executed = nbformat.read(out_dir / notebook.name, as_version=4)
    assert not errors(executed), errors(executed)
    return ["\n".join(str(o.get("text") or (o.get("data") or {}).get("text/plain", "")) for o in c.outputs)
            for c in executed.cells]


def _steady(text: str) -> str:
    """An output without what differs between runs: timings and the replay's note."""
    return re.sub(r" · ↺ replayed turn \d+ of \S+", "", re.sub(r"\d+(\.\d+)? ?(s|ms)\b", "<t>", text))


def _metrics(data: Path) -> dict[str, float]:
    """``/metrics`` (loopback needs no key): the requests served and the prompt tokens, summed over labels."""
    status = daemon.daemon_status(data)
    assert status is not None
    found = {"requests": 0.0, "prompt_tokens": 0.0}
    for family in text_string_to_metric_families(httpx.get(status.url.rstrip("/") + "/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name == "qfnb_requests_total":
                found["requests"] += sample.value
            elif sample.name == "qfnb_prompt_tokens_total":
                found["prompt_tokens"] += sample.value
    return found


def test_a_named_session_notebook_run_twice_asks_the_engine_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}, "QFNB_DATA_DIR": str(data),
           "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'notebook'}"}
    session, goes_on = _write(SESSION, tmp_path / "session.ipynb"), _write(GOES_ON, tmp_path / "goes_on.ipynb")
    daemon.ensure_daemon(data)
    try:
        first = _execute(session, tmp_path / "first", env)
        after_first, served_first = daemon.daemon_status(data), _metrics(data)
        second = _execute(session, tmp_path / "second", env)
        after_second, served_second = daemon.daemon_status(data), _metrics(data)
        third = _execute(goes_on, tmp_path / "third", env)
        after_third, served_third = daemon.daemon_status(data), _metrics(data)
    finally:
        daemon.stop_daemon(data, force=True)
    assert after_first is not None and after_second is not None and after_third is not None
    log.warning("named session: engine calls %d / %d / %d after each run; /metrics requests %s / %s / %s; "
                "prompt tokens %s / %s / %s", after_first.model_calls_total, after_second.model_calls_total,
                after_third.model_calls_total, served_first["requests"], served_second["requests"],
                served_third["requests"], served_first["prompt_tokens"], served_second["prompt_tokens"],
                served_third["prompt_tokens"])
    assert after_first.model_calls_total == 2, after_first.model_calls
    assert after_second.pid == after_first.pid, "the daemon restarted between the runs"
    assert after_second.model_calls == after_first.model_calls  # the second run: no engine call
    assert served_second["requests"] == served_first["requests"]
    assert "session s1 · 1 turn in context" in first[2] and "↺ replayed turn 2 of s1" in second[2], second
    assert [_steady(t) for t in second] == [_steady(t) for t in first]
    # a new kernel, a new prompt: one engine call, sent the two earlier turns
    assert after_third.model_calls_total == 3, after_third.model_calls
    assert "session s1 · 2 turns in context" in third[1] and "replayed" not in third[1], third[1]
    prompt_first_two = served_first["prompt_tokens"]  # turn 1 alone, then turn 1 + its answer + turn 2
    assert served_third["prompt_tokens"] - served_second["prompt_tokens"] > prompt_first_two / 2

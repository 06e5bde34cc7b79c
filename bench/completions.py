"""Inline completions on the local platform's coder model (docs/completions.md), on the notebooks of
bench/data/completion_notebooks.json (written for this bench; the tests never read them).

For each later cell of each notebook (its earlier cells run first, in one namespace, as a kernel
would have run them), each line of the cell is asked for with its first word typed: once with the
notebook as context (the earlier cells, and the kernel's names as the server extension's helper lists
them) and once without (the cell alone), one after the other (paired). Reported:

* the first ghost text's latency (request to the first streamed text, through the server
  extension's own streamed call to the daemon) p50 / p95, with the context (targets: 1 s / 2 s at
  load <= 2 on 2 cores), and the share of suggestions shown before the editor's timeout (first
  text within the server's deadline, 15 s of JupyterLab's 20 s; target >= 80 % at load 8), with the
  load while they were asked; and the whole suggestion's latency. As in the
  editor, once a cell ran (here: before the first line asked for in each cell) the notebook's
  context is read ahead into its engine slot (the server extension's warm route, untimed: the user
  moves to the next cell meanwhile), so a suggestion reads only the cell's own text;
* exact next-line match (the typed word and the suggestion's first line make the notebook's line)
  and edit similarity (difflib's ratio), with the context against without;
* a chat's speed beside a stream of completions (one after another, as a typing user sends
  them) against the same chat alone: their ratio (target >= 0.9).

The machine's load average is printed at the start and the end: the figures move with it.

    .venv/bin/python bench/completions.py [--limit N] [--chats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import io
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, load_average, log_to_stdout

from qfnb._core.backend import daemon
from qfnb.notebook.complete import backends
from qfnb.notebook.complete.context import FimRequest, finish_suggestion
from qfnb.notebook.complete.handler import context_budget, deadline
from qfnb.notebook.complete.scope import HELPER, MAX_NAMES
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL

log = logging.getLogger("bench.completions")

DATA = ROOT / "bench" / "data" / "completion_notebooks.json"
#: what the user has typed of a line when the suggestion is asked for: its first word (or symbol)
_WORD = re.compile(r"[A-Za-z_]\w*|\S")
CHAT = [{"role": "user", "content": "Write a Python function that checks whether a string is a palindrome, "
                                    "with a docstring and three examples."}]


@dataclass(frozen=True)
class Task:
    """One line to complete: the cell's text before and after it, the earlier cells, the kernel's names."""

    notebook: str
    prefix: str
    suffix: str
    target: str
    cells: tuple[str, ...]
    names: str


def _names(namespace: dict[str, Any]) -> str:
    """The kernel's names as the server extension's helper lists them (the same code)."""
    scope: dict[str, Any] = {}
    exec(HELPER, scope)
    return str(scope["describe"](namespace, MAX_NAMES))


def tasks() -> list[Task]:
    """Every line of every later cell, with what the kernel held before the cell ran."""
    found: list[Task] = []
    for notebook in json.loads(DATA.read_text())["notebooks"]:
        cells: list[str] = notebook["cells"]
        namespace: dict[str, Any] = {}
        for k, cell in enumerate(cells):
            if k:
                names = _names(namespace)
                lines = cell.split("\n")
                for i, line in enumerate(lines):
                    body = line.strip()
                    if len(body) < 8:
                        continue
                    typed = line[: len(line) - len(line.lstrip())] + _WORD.match(body).group(0)  # type: ignore[union-attr]
                    found.append(Task(notebook["name"], "\n".join([*lines[:i], typed]),
                                      "\n" + "\n".join(lines[i + 1:]) if i + 1 < len(lines) else "",
                                      body, tuple(cells[:k]), names))
            with contextlib.redirect_stdout(io.StringIO()):  # what the cells print
                exec(cell, namespace)
    return found


def _score(task: Task, suggestion: str) -> tuple[float, float]:
    """The line as the suggestion completes it (what was typed of it, then the suggestion's first
    line) against the notebook's line: exact, and difflib's ratio."""
    target = task.target
    line = (task.prefix.rsplit("\n", 1)[-1] + suggestion.split("\n", 1)[0]).strip()
    return float(line == target), difflib.SequenceMatcher(None, line, target).ratio()


async def _read_ahead(completion: FimRequest, document: str) -> None:
    """A call the editor makes untimed (the notebook's read-ahead, the engine's first load): whole,
    without the suggestion's deadline."""
    await backends.local(completion, None, document)


#: the editor's timeout (JupyterLab's default, ms): a suggestion is streamed within its deadline below it
EDITOR_TIMEOUT_MS = 20_000


async def _ask(completion: FimRequest, document: str) -> tuple[str, float, float | None, bool]:
    """The suggestion streamed as the editor gets it: its text, its whole time, when its first ghost
    text showed (None: none, the model wrote nothing to show or nothing before the deadline) and
    whether it was answered in time: whole before the deadline, or its first text shown by then and
    cut there (else the server withdraws it: late)."""
    started = time.monotonic()
    limit = deadline(EDITOR_TIMEOUT_MS)
    pieces: list[str] = []
    first: float | None = None
    stream = backends.local_stream(completion, None, document)
    try:
        while True:
            piece = await asyncio.wait_for(anext(stream), max(0.0, started + limit - time.monotonic()))
            if isinstance(piece, backends.Suggestion):
                text = finish_suggestion(piece.text, completion.prefix, completion.suffix)
                if first is None and text:
                    first = time.monotonic() - started
                return text, time.monotonic() - started, first, True
            pieces.append(piece)
            if first is None and finish_suggestion("".join(pieces), completion.prefix, completion.suffix):
                first = time.monotonic() - started
    except TimeoutError:  # past the deadline: withdrawn (what showed before it was shown)
        # cut there: what showed in time is the suggestion (answered); nothing shown: late
        return finish_suggestion("".join(pieces), completion.prefix, completion.suffix), limit, first, first is not None
    finally:
        await stream.aclose()


async def quality(selected: list[Task]) -> dict[str, Any]:
    scores: dict[str, list[tuple[float, float]]] = {"context": [], "alone": []}
    latency: dict[str, list[float]] = {"context": [], "alone": []}
    ghosts: dict[str, list[float | None]] = {"context": [], "alone": []}
    answered: dict[str, list[bool]] = {"context": [], "alone": []}
    loads: list[float] = []
    read_ahead: tuple[str, tuple[str, ...]] | None = None
    for n, task in enumerate(selected):
        loads.append(os.getloadavg()[0])
        asks = {"context": FimRequest.of(task.prefix, task.suffix, task.cells, task.names, budget=context_budget()),
                "alone": FimRequest.of(task.prefix, task.suffix)}
        if read_ahead != (task.notebook, task.cells):  # the previous cell ran: the editor reads ahead
            read_ahead = (task.notebook, task.cells)
            await _read_ahead(FimRequest.of("", "", task.cells, task.names, max_tokens=1),
                              f"{task.notebook}-context.ipynb")
        for mode, completion in asks.items():
            text, seconds, first, in_time = await _ask(completion, f"{task.notebook}-{mode}.ipynb")
            answered[mode].append(in_time)
            scores[mode].append(_score(task, text))
            latency[mode].append(seconds)
            ghosts[mode].append(first)
            log.info("%2d %-7s %5.2fs (ghost %s) load %.1f  want %-50.50s got %s", n, mode, seconds,
                     f"{first:.2f}s" if first is not None else "none", loads[-1], task.target,
                     text.split("\n")[0][:50])
    out: dict[str, Any] = {}
    for mode in scores:
        exact = statistics.mean(s[0] for s in scores[mode])
        similar = statistics.mean(s[1] for s in scores[mode])
        lat = sorted(latency[mode])
        shown = sorted(g for g in ghosts[mode] if g is not None)
        out[mode] = {"exact": exact, "similarity": similar, "p50": statistics.median(lat),
                     "p95": _p95(lat), "ghost_p50": statistics.median(shown) if shown else float("nan"),
                     "ghost_p95": _p95(shown) if shown else float("nan"),
                     "shown": sum(g is not None for g in ghosts[mode]) / len(ghosts[mode]), "asked": len(ghosts[mode]),
                     "answered": sum(answered[mode]) / len(answered[mode]),
                     "load_min": min(loads), "load_max": max(loads)}
    return out


def _p95(values: list[float]) -> float:
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def _chat_speed(client: Any) -> float:
    """Characters a second of one greedy chat: the same answer each time, so two speeds' ratio is the
    ratio of the chat's times."""
    started = time.monotonic()
    answer = client.chat.completions.create(model=LOCAL_CHAT_MODEL, messages=CHAT, max_tokens=96, temperature=0)
    return len(answer.choices[0].message.content or "") / (time.monotonic() - started)


async def beside(client: Any, chats: int, selected: list[Task]) -> dict[str, float]:
    """A chat's speed alone and beside a stream of completions (alternating, paired)."""
    alone: list[float] = []
    mixed: list[float] = []
    stop = asyncio.Event()

    async def typing() -> None:
        n = 0
        while not stop.is_set():
            task = selected[n % len(selected)]
            await _ask(FimRequest.of(task.prefix, task.suffix, task.cells, task.names), "beside.ipynb")
            n += 1
            await asyncio.sleep(0.3)

    for _ in range(chats):
        alone.append(await asyncio.to_thread(_chat_speed, client))
        stop.clear()
        stream = asyncio.ensure_future(typing())
        await asyncio.sleep(0.5)
        mixed.append(await asyncio.to_thread(_chat_speed, client))
        stop.set()
        await stream
    return {"alone": statistics.median(alone), "beside": statistics.median(mixed),
            "ratio": statistics.median(mixed) / statistics.median(alone)}


def _report(figures: dict[str, Any]) -> None:
    for mode in ("context", "alone"):
        f = figures[mode]
        log.info("%-8s exact next line %.2f  edit similarity %.3f  latency p50 %.2f s  p95 %.2f s",
                 mode, f["exact"], f["similarity"], f["p50"], f["p95"])
        log.info("%-8s first ghost text p50 %.2f s  p95 %.2f s · before the editor's %d s timeout: %.0f %% answered, "
                 "%.0f %% with ghost text shown, of %d (load %.1f to %.1f while asked)", mode, f["ghost_p50"],
                 f["ghost_p95"], EDITOR_TIMEOUT_MS // 1000, 100 * f["answered"], 100 * f["shown"], f["asked"],
                 f["load_min"], f["load_max"])
    log.info("context wins: exact %+.2f, similarity %+.3f", figures["context"]["exact"] - figures["alone"]["exact"],
             figures["context"]["similarity"] - figures["alone"]["similarity"])
    log.info("load average now: %s", load_average())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="lines asked for at most (0: all)")
    parser.add_argument("--chats", type=int, default=3, help="chats alone and beside completions (0: none)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one completion may take")
    args = parser.parse_args()
    backends.TIMEOUT = args.timeout  # a loaded machine's first call (the engine's start) takes longer
    log_to_stdout()
    import qfnb

    selected = tasks()
    if args.limit:  # spread over the notebooks
        selected = selected[:: max(1, len(selected) // args.limit)][: args.limit]
    log.info("load average at start: %s; %d lines to complete", load_average(), len(selected))
    with tempfile.TemporaryDirectory(prefix="qfnb-bench-complete-") as tmp:
        data = Path(tmp) / "data"
        os.environ["QFNB_DATA_DIR"] = str(data)  # the ledger and the daemon the completions reach
        daemon.ensure_daemon(data)
        try:
            warm = FimRequest.of("import pandas as pd\n", "")
            asyncio.run(_read_ahead(warm, "warm.ipynb"))
            figures = asyncio.run(quality(selected))
            _report(figures)
            if args.chats:
                client = qfnb.openai_client(data_dir=data, timeout=300, max_retries=0)
                speed = asyncio.run(beside(client, args.chats, selected))
                log.info("chat beside completions %.1f chars/s, alone %.1f chars/s: ratio %.3f",
                         speed["beside"], speed["alone"], speed["ratio"])
        finally:
            daemon.stop_daemon(data, force=True, timeout=30)
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    sys.exit(main())

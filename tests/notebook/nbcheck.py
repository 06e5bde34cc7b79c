"""Contract-output checks for executed notebooks, the way ``pytest --nbval-lax`` makes them.

nbval compares a fresh run with the outputs stored in the notebook, but only for cells marked
``# NBVAL_CHECK_OUTPUT`` (or tagged ``nbval-check-output``). The fine-tune notebook is executed
once, in JupyterLab, so its saved copy is checked here instead: the marker detection, stream
coalescing and sanitize-file parsing are nbval's own functions, and :func:`compare_outputs`
follows nbval's ``IPyNbCell.compare_outputs`` (same skipped keys, same per-MIME-type lists).
"""

from __future__ import annotations

import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import nbformat
from nbval.plugin import (
    coalesce_streams,
    find_comment_markers,
    find_metadata_tags,
    get_sanitize_patterns,
    transform_streams_for_comparison,
)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = NOTEBOOKS / "nbval_sanitize.cfg"

# nbval's IPyNbFile.skip_compare without --nbdime
SKIP_COMPARE = frozenset({
    "metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
    "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg",
})


def nbval_command(notebook: os.PathLike[str]) -> list[str]:
    """``pytest --nbval-lax`` on one notebook in this environment, with the tour's sanitize file."""
    return [
        # pyproject's addopts turn plugin autoload off: nbval is named
        sys.executable, "-m", "pytest", "-p", "nbval", "-p", "no:cacheprovider", "-q", "--color=no",
        "--nbval-lax", "--nbval-current-env", f"--nbval-sanitize-with={SANITIZE}",
        "--nbval-cell-timeout=600", str(notebook),
    ]


def is_contract(cell: nbformat.NotebookNode) -> bool:
    """True for a code cell nbval checks under ``--nbval-lax`` (comment markers win over tags)."""
    if cell.cell_type != "code":
        return False
    options = dict(find_metadata_tags(cell.metadata))
    options.update(find_comment_markers(cell.source))
    return bool(options.get("check"))


def load_sanitizer(path: Path = SANITIZE) -> list[tuple[str, str]]:
    return list(get_sanitize_patterns(path.read_text(encoding="utf-8")))


def _sanitize(value: Any, patterns: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for regex, replace in patterns:
            value = re.sub(regex, replace, value)
    return value


def _flatten(outputs: list[Any], patterns: list[tuple[str, str]]) -> dict[str, list[Any]]:
    flat: dict[str, list[Any]] = defaultdict(list)
    for out in transform_streams_for_comparison(coalesce_streams(outputs)):
        for key, value in out.items():
            if key in SKIP_COMPARE:
                continue
            if key == "data":
                for mime, data in value.items():
                    if mime not in SKIP_COMPARE:
                        flat[mime].append(_sanitize(data, patterns))
            else:
                flat[key].append(_sanitize(value, patterns))
    return flat


def compare_outputs(actual: list[Any], expected: list[Any], patterns: list[tuple[str, str]]) -> str | None:
    """``None`` when the outputs match as nbval would judge them, else what differs."""
    got = _flatten([nbformat.from_dict(o) for o in actual], patterns)
    want = _flatten([nbformat.from_dict(o) for o in expected], patterns)
    if set(got) != set(want):
        return f"output fields differ: expected {sorted(want)}, got {sorted(got)}"
    for key, values in want.items():
        if got[key] != values:
            return f"{key}: expected {values!r}, got {got[key]!r}"
    return None


def contract_mismatches(
    executed: nbformat.NotebookNode, reference: nbformat.NotebookNode, sanitize: Path = SANITIZE
) -> list[str]:
    """One message per contract cell of ``reference`` whose output ``executed`` does not match."""
    patterns = load_sanitizer(sanitize)
    ran = [c for c in executed.cells if c.cell_type == "code"]
    ref = [c for c in reference.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in ref]:
        return ["the executed notebook's code cells are not the reference notebook's"]
    problems = []
    for n, (got, want) in enumerate(zip(ran, ref, strict=True)):
        if is_contract(want) and (diff := compare_outputs(got.outputs, want.outputs, patterns)):
            problems.append(f"code cell {n} ({want.source.splitlines()[-1]!r}): {diff}")
    return problems


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy to execute: a stale stored output must never pass for a fresh one."""
    copy = nbformat.from_dict(nb)
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return copy


def errors(nb: nbformat.NotebookNode) -> list[str]:
    """``'ename: evalue'`` of every error output (a cell that raised)."""
    return [
        f"{out.get('ename')}: {out.get('evalue')}"
        for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]


def stderr_of(nb: nbformat.NotebookNode) -> list[str]:
    """Every stderr stream output (a notebook shows them as red blocks under the cell)."""
    return [
        out.get("text", "")
        for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "stream" and out.get("name") == "stderr"
    ]


def text_of(cell: nbformat.NotebookNode) -> str:
    """A cell's stream text and text/plain outputs, joined."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def find(nb: nbformat.NotebookNode, needle: str) -> nbformat.NotebookNode:
    """The first code cell whose source contains ``needle``."""
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)

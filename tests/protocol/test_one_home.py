"""Every shared rule has one home (issue 20): an AST scan of ``qfnb`` finds each table defined once.

- default model names: their string literals only in ``qfnb/protocol/console/model_names.py``;
- training limits and defaults: a table keyed by hyperparameter wire names only in
  ``qfnb/protocol/console/training.py``;
- the daemon status schema: its wire keys only in ``qfnb/protocol/platform/daemon.py``;
- the atomic JSON writer: a function that both dumps JSON and renames/links a file into place
  only in ``qfnb/protocol/platform/files.py``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

from qfnb.protocol.console import model_names
from tests.source_trees import parse_source

ROOT = Path(__file__).resolve().parents[2] / "qfnb"
HYPER_KEYS = {"epoch", "learningRate", "batchSize", "maxSeqLen", "loraRank", "loraAlpha", "loraDropout",
              "maxSteps", "loggingSteps"}
STATUS_KEYS = {"uptimeSeconds", "modelsLoaded", "memoryBytes", "childMemoryBytes"}


@functools.cache
def modules() -> tuple[tuple[str, ast.Module], ...]:
    """Every module of qfnb, parsed once for all the scans."""
    return tuple((str(path.relative_to(ROOT.parent)), parse_source(path.read_text(encoding="utf-8")))
                 for path in sorted(ROOT.rglob("*.py")))


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes (mentioning a name in prose is fine)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def strings(tree: ast.Module) -> Iterator[str]:
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.value


def where(predicate: object) -> set[str]:
    return {name for name, tree in modules() if predicate(tree)}  # type: ignore[operator]


def test_default_model_names_are_spelled_once() -> None:
    names = {model_names.LOCAL_CHAT_MODEL, model_names.LOCAL_FINETUNE_BASE, model_names.LOCAL_EMBEDDING_MODEL,
             model_names.V2_DEFAULT_MODEL}
    assert where(lambda tree: names & set(strings(tree))) == {"qfnb/protocol/console/model_names.py"}


def test_one_table_of_training_limits_and_defaults() -> None:
    def has_table(tree: ast.Module) -> bool:
        return any(isinstance(node, ast.Dict) and len(HYPER_KEYS & {k.value for k in node.keys
                                                                   if isinstance(k, ast.Constant)}) >= 3
                   for node in ast.walk(tree))

    assert where(has_table) == {"qfnb/protocol/console/training.py"}


def test_the_daemon_status_schema_has_one_owner() -> None:
    assert where(lambda tree: STATUS_KEYS & set(strings(tree))) == {"qfnb/protocol/platform/daemon.py"}


def test_one_atomic_json_writer() -> None:
    def calls(fn: ast.AST) -> set[str]:
        return {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(fn) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)}

    def writes_json_atomically(tree: ast.Module) -> bool:
        return any(calls(fn) & {"json.dump", "json.dumps"} and calls(fn) & {"os.replace", "os.link", "os.rename"}
                   for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef))

    def renames_into_place(tree: ast.Module) -> bool:
        return any(calls(fn) & {"tempfile.mkstemp"} and calls(fn) & {"os.replace", "os.link"}
                   for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef))

    # no module serialises JSON and renames it into place itself: protocol/platform/files.py writes it (and text)
    assert where(writes_json_atomically) == set()
    assert "qfnb/protocol/platform/files.py" in where(renames_into_place)



def test_one_home_for_the_inference_ranges() -> None:
    """``RANGES`` and ``OPENAI_RANGES`` are written only by the generator (from tools/spec/inference.py):
    no other module holds a table of sampling fields to ``(low, high, ...)`` tuples."""
    sampling = {"temperature", "top_p", "top_k", "penalty_score", "frequency_penalty", "presence_penalty", "seed"}

    def has_table(tree: ast.Module) -> bool:
        return any(isinstance(node, ast.Dict) and len(sampling & {k.value for k, v in zip(node.keys, node.values,
                                                                                           strict=True)
                                                                  if isinstance(k, ast.Constant)
                                                                  and isinstance(v, ast.Tuple)}) >= 3
                   for node in ast.walk(tree))

    assert where(has_table) == {"qfnb/protocol/wires/chat/ranges.py"}
    from qfnb.protocol.wires.chat.ranges import OPENAI_RANGES, RANGES

    assert OPENAI_RANGES["temperature"][:2] == (0.0, 2.0) and RANGES["temperature"][:3] == (0.0, 1.0, True)
    assert OPENAI_RANGES["top_k"] == RANGES["top_k"]  # the field's own range where OpenAI has none


def test_html_escaping_and_sanitising_live_in_safe_html() -> None:
    """The one escaping rule (issue 43): only ``qfnb/resources/safe_html.py`` escapes or sanitises
    HTML (``html.escape``, nh3, mistune), and only the notebook's ``SafeHTML`` widget subclasses
    ``ipywidgets.HTML``; every view imports them from there."""

    def escapes(tree: ast.Module) -> bool:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name in ("html", "nh3", "mistune", "bleach", "markdown_it")
                                                    for a in node.names):
                return True
            if isinstance(node, ast.ImportFrom) and node.module in ("html", "nh3", "mistune", "bleach"):
                return True
        return False

    def html_widget(tree: ast.Module) -> bool:
        return any(isinstance(node, ast.Attribute) and node.attr in ("HTML", "HTMLMath")
                   and isinstance(node.value, ast.Name) and node.value.id in ("w", "widgets", "ipywidgets")
                   for node in ast.walk(tree))

    assert where(escapes) == {"qfnb/resources/safe_html.py"}
    assert where(html_widget) == set()


def test_one_opener_of_the_data_dirs_sqlite_files() -> None:
    """Setting a file's journal mode (the WAL every shared writer's file uses) is ``open_db``'s alone;
    the other ``sqlite3.connect`` calls open a file otherwise (read-only, or one connection a use)."""
    found = where(lambda tree: any("journal_mode" in s for s in strings(tree)))
    assert found == {"qfnb/protocol/platform/sqlite_files.py"}

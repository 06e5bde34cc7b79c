"""The import-linter contracts in pyproject.toml hold for the tree, and they bite.

Each breaking case copies the package to a temporary directory, adds one forbidden import and
runs ``lint-imports`` there against the repository's own contracts.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

from tests.source_trees import parse_source

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (dev extra)")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", "--config", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(ROOT / "qfnb", root / "qfnb", ignore=shutil.ignore_patterns("__pycache__", "*.gguf", "*.bin"))
    return root


def _with_line(tree: Path, module: str, line: str) -> Path:
    path = tree / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{line}\n", encoding="utf-8")
    return path


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "line", "complaint"), [
    ("qfnb/_core/runtime/progress.py", "import qfnb.notebook.widgets.progress_bar",
     "qfnb._core is not allowed to import"),
    ("qfnb/local/domain/state/store.py", "import qfnb.local.server.serving.wire",
     "qfnb.local.domain is not allowed to import"),
    ("qfnb/_core/http/retry.py", "import qfnb._core.runtime.sync", "qfnb._core.http is not allowed to import"),
    ("qfnb/resources/inference/chat.py", "import qfnb.dataset", "qfnb.resources is not allowed to import"),
    ("qfnb/local/domain/platform.py", "import qfnb._core.errors", "qfnb.local.domain.platform -> qfnb._core.errors"),
    ("qfnb/_core/http/retry.py", "import qfnb._core.http.client", "No cycles are allowed in qfnb._core"),
    ("qfnb/trainer/consts.py", "import ipywidgets", "qfnb.trainer is not allowed to import ipywidgets"),
    ("qfnb/dataset/rows/_io.py", "import qfnb.dataset.dataset", "No cycles are allowed in qfnb.dataset"),
    ("qfnb/model/service.py", "def _back() -> None:\n    import qfnb.model.model",  # inside a function too
     "No cycles are allowed in qfnb.model"),
    ("qfnb/evaluation/results/compare_view.py", "import qfnb.evaluation.results.compare",
     "No cycles are allowed in qfnb.evaluation"),
    # the evaluation's rooms: the numbers know no scorer, the shared modules no room
    ("qfnb/evaluation/stats/paired.py", "import qfnb.evaluation.evaluators.metrics",
     "qfnb.evaluation.stats is not allowed to import qfnb.evaluation.evaluators"),
    ("qfnb/evaluation/llm.py", "import qfnb.evaluation.runs.answers",
     "qfnb.evaluation.llm is not allowed to import qfnb.evaluation.runs"),
    ("qfnb/notebook/chat/cell.py", "import qfnb.notebook.magics", "No cycles are allowed in qfnb.notebook"),
    ("qfnb/trainer/records/replay.py", "import qfnb.trainer.finetune", "No cycles are allowed in qfnb.trainer"),
    ("qfnb/dataset/rows/_io.py", "import qfnb.config", "qfnb.dataset is not allowed to import qfnb.config"),
    ("qfnb/_core/http/retry.py", "import qfnb.errors", "qfnb._core is not allowed to import qfnb.errors"),
    ("qfnb/protocol/wires/qianfan/routes.py", "import qfnb.consts",
     "qfnb.protocol is not allowed to import qfnb.consts"),
    ("qfnb/resources/tools.py", "import qfnb.common.tool", "qfnb.resources is not allowed to import qfnb.common"),
    # a wire protocol's converter imports no route module, and no other protocol's converter
    ("qfnb/local/convert/openai_chat.py", "import qfnb.local.server.serving.wire",
     "qfnb.local.convert is not allowed to import"),
    ("qfnb/local/convert/openai_chat.py", "import qfnb.local.convert.qianfan_v1",
     "no protocol converter imports another's BROKEN"),
    ("qfnb/local/server/routes/calls/openai.py", "import qfnb.local.server.routes.calls.inference",
     "no route module imports another BROKEN"),
    ("qfnb/local/server/routes/platform/batch.py", "import qfnb.local.server.routes.platform.v2",
     "no route module imports another BROKEN"),
])
def test_a_forbidden_import_breaks_a_contract(tree: Path, module: str, line: str, complaint: str) -> None:
    path = tree / module
    original = path.read_text(encoding="utf-8")
    try:
        _with_line(tree, module, line)
        result = _lint(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode != 0
    assert complaint in result.stdout, result.stdout


# ---- the engine face is declared, never probed ------------------------------------------------------

#: ``getattr``/``hasattr`` calls qfnb/local may make, by file and object: none (a third-party object
#: whose attributes vary, a transformers config, is read through ``vars``; an address by its type)
PROBES_ALLOWED: set[tuple[str, str]] = set()


def _probes(source: str) -> list[str]:
    """The objects a module probes with ``getattr``/``hasattr``, as source text."""
    return [ast.unparse(node.args[0]) for node in ast.walk(parse_source(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr") and node.args]


def test_the_probe_finder_sees_a_probe() -> None:
    assert _probes("x = getattr(engine, 'achat_fields', None)\nif hasattr(platform.registry, 'store'): pass") == [
        "engine", "platform.registry"]


def test_no_engine_registry_or_model_is_probed_in_the_platform() -> None:
    """What an engine, the registry or a served model can do is declared on its protocol
    (``qfnb.local.engines.api``), never found out with ``getattr``/``hasattr``."""
    found = [(str(path.relative_to(ROOT)), probed) for path in sorted((ROOT / "qfnb" / "local").rglob("*.py"))
             for probed in _probes(path.read_text(encoding="utf-8"))]
    assert [p for p in found if p not in PROBES_ALLOWED] == []


#: the ``getattr``/``hasattr`` calls qfnb/notebook makes, by file and object, and how many: each reads an
#: object that is not qfnb's (IPython's, the standard library's, a user's value) or a declared field by a
#: name from a table. What qfnb made (a result, an evaluator, a trainer, the magics) is read by its
#: declared attributes (its type, or a Protocol the room declares), so a new probe fails here.
NOTEBOOK_PROBES_ALLOWED: dict[tuple[str, str], int] = {
    ("_interp.py", "value"): 1,  # a user's variable in ``{braces}``: ``{obj.attr}``
    ("_ipython.py", "magic"): 1,  # the parser IPython's @magic_arguments attaches to a function
    ("complete/handler.py", "user"): 1,  # jupyter_server's user: a User, or a plain name in older servers
    ("complete/handler.py", "manager"): 1,  # jupyter_client's kernel manager: a provisioner only where local
    ("complete/handler.py", "getattr(manager, 'provisioner', None)"): 1,
    ("complete/scope.py", "manager"): 1,  # jupyter_server's kernel manager: execution_state where it tracks it
    ("complete/stream.py", "stream"): 1,  # an engine's or a cloud's async iterator: aclose only on a generator
    ("data/batch.py", "value"): 5,  # %qfbatch SOURCE: a list, a DataFrame or a Dataset (qfnb's or the SDK's)
    ("evaluation/plan.py", "shell"): 1,  # IPython's shell: only a kernel's has ``kernel``
    ("magic_options.py", "self"): 2,  # declared fields, by the names in TRAIN_HYPER
    ("magics.py", "ipython"): 1,  # IPython's shell: a Completer only where it completes
    ("notices.py", "module"): 1,  # a warning class of qfnb's, read by name once its module is loaded
    ("notices.py", "previous"): 1,  # the standard library's warnings.showwarning: any callable
    ("notices.py", "warnings.showwarning"): 1,
    ("training/dashboard.py", "busy"): 1,  # what on_deploy returned: a concurrent.futures.Future, or not
    ("training/launcher.py", "info"): 1,  # IPython's ExecutionInfo: cell_id in a front end that sends it
    ("training/run.py", "self"): 1,  # declared fields, by the names in TRAIN_OPTIONS
    ("training/state.py", "data"): 1,  # any nested object of a trainer's output or a task's detail
    ("training/state.py", "v"): 1,
    ("training/state.py", "self"): 1,  # declared curve fields, by the names in _CURVES
    ("ledger/usage.py", "ipython"): 2,  # IPython's shell and ExecutionInfo, which differ between IPython 8 and 9
    ("ledger/usage.py", "getattr(ipython, 'history_manager', None)"): 1,
    ("ledger/usage.py", "info"): 1,
    ("widgets/deploy_view.py", "future"): 1,  # what on_deploy returned, as in the dashboard
}


def test_the_notebook_probes_only_objects_that_are_not_its_own() -> None:
    notebook = ROOT / "qfnb" / "notebook"
    found: dict[tuple[str, str], int] = {}
    for path in sorted(notebook.rglob("*.py")):
        for probed in _probes(path.read_text(encoding="utf-8")):
            key = (path.relative_to(notebook).as_posix(), probed)
            found[key] = found.get(key, 0) + 1
    assert found == NOTEBOOK_PROBES_ALLOWED


# ---- the notebook's rooms take typed arguments ---------------------------------------------------

#: the modules of qfnb/notebook that may know argparse: the magics that parse a line, the typed
#: arguments built from it (``ChatArgs.of(ns)``, ...), and the IPython facade whose parser they use
ARGPARSE_ALLOWED = {"qfnb/notebook/magics.py", "qfnb/notebook/arguments.py", "qfnb/notebook/_ipython.py"}


def _argparse_words(source: str) -> list[str]:
    """Where a module names argparse, a ``Namespace`` or reads ``getattr(args, ...)``, as its lines."""
    return [line.strip() for line in source.splitlines()
            if re.search(r"\bargparse\b|\bNamespace\b|getattr\(\s*args\b", line)]


def test_the_argparse_finder_sees_a_namespace() -> None:
    assert _argparse_words("import argparse\nx = SimpleNamespace()\ndef f(args: Namespace): ...\n"
                           "y = getattr(args, 'model', None)\n") == [
        "import argparse", "def f(args: Namespace): ...", "y = getattr(args, 'model', None)"]


def test_nothing_below_the_magics_sees_a_namespace() -> None:
    """A magic's parsed line becomes its frozen typed arguments once (:mod:`qfnb.notebook.arguments`);
    the rooms below (chat, training, evaluation, data) read typed fields, never an ``argparse.Namespace``."""
    found = [(str(path.relative_to(ROOT)), line) for path in sorted((ROOT / "qfnb" / "notebook").rglob("*.py"))
             if str(path.relative_to(ROOT)) not in ARGPARSE_ALLOWED
             for line in _argparse_words(path.read_text(encoding="utf-8"))]
    assert found == []


def _circles(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "import_circles.py"), "--root", str(root)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_no_circle_hides_behind_type_checking(tree: Path) -> None:
    """import-linter leaves ``if TYPE_CHECKING:`` imports out; a circle through one is still a
    split-off file importing back the class it came from."""
    result = _circles(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 circles" in result.stdout


def test_a_type_checking_circle_is_found(tree: Path) -> None:
    module = "qfnb/dataset/rows/_io.py"
    path = tree / module
    original = path.read_text(encoding="utf-8")
    try:
        _with_line(tree, module, "from typing import TYPE_CHECKING\n"
                                 "if TYPE_CHECKING:\n    from qfnb.dataset.dataset import Dataset")
        result = _circles(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode == 1
    # the room the file is in (rows) and the module it reaches back to (dataset) are the circle
    assert "circle in qfnb.dataset: " in result.stdout and "rows" in result.stdout, result.stdout


def test_a_circle_through_a_package_init_is_found(tree: Path) -> None:
    """``schema -> qfnb.dataset -> schema``: no sibling imports another, the package does."""
    module = "qfnb/dataset/schema.py"
    path = tree / module
    original = path.read_text(encoding="utf-8")
    try:
        _with_line(tree, module, "def _back() -> object:\n    from qfnb.dataset import Dataset\n    return Dataset")
        result = _circles(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode == 1
    [line] = [x for x in result.stdout.splitlines() if x.startswith("circle in modules: qfnb.dataset, ")]
    assert "qfnb.dataset.schema" in line.split(": ", 1)[1].split(", "), result.stdout


@pytest.mark.parametrize("comment", ["", "  # deferred: the test's reason", "above"])
def test_a_function_level_import_says_why(tree: Path, comment: str) -> None:
    """An import of a qfnb module inside a function is named unless a ``# deferred: <why>``
    comment gives its reason (on its line, or on the line above)."""
    module = "qfnb/dataset/schema.py"
    path = tree / module
    original = path.read_text(encoding="utf-8")
    body = ("    # deferred: the test's reason\n    import qfnb.protocol.errors" if comment == "above"
            else f"    import qfnb.protocol.errors{comment}")
    try:
        _with_line(tree, module, f"def _late() -> object:\n{body}\n    return qfnb.protocol.errors")
        result = _circles(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    named = [line for line in result.stdout.splitlines() if line.startswith(f"{module}:")]
    if comment:
        assert result.returncode == 0 and not named, result.stdout
    else:
        assert result.returncode == 1
        assert named and "import qfnb.protocol.errors" in named[0] and "# deferred: <why>" in named[0], result.stdout


# ---- the official-SDK mirror: a fence that re-exports, never a floor ---------------------------------

#: the official SDK's module paths; qfnb/common/cli is the official command line, an app on top of
#: every layer, and defines its commands
MIRROR_TOPS = ("config", "consts", "client", "errors", "version", "common", "utils")
#: the definitions a mirror module may hold, each said in its docstring
MIRROR_OWN = {"qfnb/config.py": {"_ConfigModule"}}


def _mirror_files() -> list[Path]:
    files: list[Path] = []
    for top in MIRROR_TOPS:
        path = ROOT / "qfnb" / f"{top}.py"
        files += [path] if path.exists() else sorted((ROOT / "qfnb" / top).rglob("*.py"))
    return [f for f in files if not f.is_relative_to(ROOT / "qfnb" / "common" / "cli")]


def _definitions(source: str) -> list[str]:
    """The classes and functions a module defines at its top level (inside ``if``/``try`` too);
    a module ``__getattr__`` (PEP 562: a name imported on first use) re-exports, so it is left out."""
    found: list[str] = []
    statements = list(parse_source(source).body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name != "__getattr__":
                found.append(node.name)
        elif isinstance(node, ast.If | ast.Try):
            statements += [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            statements += [s for h in getattr(node, "handlers", []) for s in h.body]
    return sorted(found)


def test_the_mirror_checker_sees_a_definition() -> None:
    source = "from qfnb._core.errors import QfnbError\nif True:\n    class Extra(QfnbError):\n        pass\n"
    assert _definitions(source) == ["Extra"]
    assert _definitions("def __getattr__(name):\n    raise AttributeError(name)\n") == []


@pytest.mark.parametrize("path", _mirror_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_mirror_module_only_reexports(path: Path) -> None:
    """Each official module path re-exports what a layer defines: no class or function of its own
    (save those :data:`MIRROR_OWN` names, which its docstring explains), and each name it exports
    is an object defined in a layer."""
    rel = str(path.relative_to(ROOT))
    source = path.read_text(encoding="utf-8")
    own = MIRROR_OWN.get(rel, set())
    assert set(_definitions(source)) == own, f"{rel} defines {_definitions(source)}: move it to its layer"
    docstring = ast.get_docstring(parse_source(source)) or ""
    assert all(name in docstring for name in own), f"{rel}'s docstring does not say why it defines {own}"
    name = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    module = importlib.import_module(name)
    for exported in getattr(module, "__all__", []):
        value = getattr(module, exported)
        if isinstance(value, type | types.FunctionType):
            assert value.__module__ != name, f"{name}.{exported} is defined there"


def test_no_layer_may_import_a_mirror_module() -> None:
    """The forbidden contract names every mirror module and every layer (the local platform too)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    [fence] = [c for c in contracts if c["name"] == "no layer imports the official-SDK mirror modules"]
    [layers] = [c for c in contracts if c["name"].startswith("layers: protocol -> _core")]
    assert sorted(fence["forbidden_modules"]) == sorted(f"qfnb.{top}" for top in MIRROR_TOPS)
    assert set(fence["source_modules"]) == {*layers["layers"], "qfnb.local"}


def _private_imports(root: Path) -> list[str]:
    """``from M import _name`` across modules, where ``_name`` is a private name (not a
    package's private submodule such as ``qfnb.notebook._interp``)."""
    found = []
    for path in sorted((root / "qfnb").rglob("*.py")):
        package = path.relative_to(root).parent.parts
        for node in ast.walk(parse_source(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").startswith("qfnb")):
                continue
            base = package[:len(package) - node.level + 1] if node.level else ()
            parts = (*base, *(node.module or "").split(".")) if node.module else base
            for alias in node.names:
                if not alias.name.startswith("_") or alias.name.startswith("__"):
                    continue
                target = root.joinpath(*parts, alias.name)
                if not (target.with_suffix(".py").exists() or (target / "__init__.py").exists()):
                    found.append(f"{path.relative_to(root)}:{node.lineno} imports {alias.name}")
    return found


def test_no_private_name_is_imported_across_modules(tree: Path) -> None:
    assert _private_imports(ROOT) == []
    chat, usage = tree / "qfnb/notebook/chat/answer.py", tree / "qfnb/notebook/ledger/usage.py"
    originals = {p: p.read_text(encoding="utf-8") for p in (chat, usage)}
    try:
        _with_line(tree, "qfnb/notebook/chat/answer.py", "from qfnb.notebook.chat.runner import _hidden  # noqa")
        _with_line(tree, "qfnb/notebook/ledger/usage.py", "from .. import _interp as interp  # a private module: fine")
        line = len(chat.read_text(encoding="utf-8").splitlines())
        assert _private_imports(tree) == [f"qfnb/notebook/chat/answer.py:{line} imports _hidden"]
    finally:
        for path, text in originals.items():
            path.write_text(text, encoding="utf-8")

"""The import-linter contracts in pyproject.toml hold for the tree, and they bite.

Each breaking case copies the package to a temporary directory, adds one forbidden import and
runs ``lint-imports`` there against the repository's own contracts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    ("qfnb/local/domain/store.py", "import qfnb.local.server.wire", "qfnb.local.domain is not allowed to import"),
    ("qfnb/_core/http/retry.py", "import qfnb._core.runtime.sync", "qfnb._core.http is not allowed to import"),
    ("qfnb/resources/inference/chat.py", "import qfnb.dataset", "qfnb.resources is not allowed to import"),
    ("qfnb/local/domain/platform.py", "import qfnb._core.errors", "qfnb.local.domain.platform -> qfnb._core.errors"),
    ("qfnb/_core/http/retry.py", "import qfnb._core.http.client", "No cycles are allowed in qfnb._core"),
    ("qfnb/trainer/consts.py", "import ipywidgets", "qfnb.trainer is not allowed to import ipywidgets"),
    ("qfnb/dataset/_io.py", "import qfnb.dataset.dataset", "No cycles are allowed in qfnb.dataset"),
    ("qfnb/model/service.py", "def _back() -> None:\n    import qfnb.model.model",  # inside a function too
     "No cycles are allowed in qfnb.model"),
    ("qfnb/evaluation/compare_view.py", "import qfnb.evaluation.compare", "No cycles are allowed in qfnb.evaluation"),
    ("qfnb/notebook/chat_cell.py", "import qfnb.notebook.magics", "No cycles are allowed in qfnb.notebook"),
    ("qfnb/trainer/replay.py", "import qfnb.trainer.finetune", "No cycles are allowed in qfnb.trainer"),
    ("qfnb/dataset/_io.py", "import qfnb.config", "qfnb.dataset is not allowed to import qfnb.config"),
    ("qfnb/_core/http/retry.py", "import qfnb.errors", "qfnb._core is not allowed to import qfnb.errors"),
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
    module = "qfnb/dataset/_io.py"
    path = tree / module
    original = path.read_text(encoding="utf-8")
    try:
        _with_line(tree, module, "from typing import TYPE_CHECKING\n"
                                 "if TYPE_CHECKING:\n    from qfnb.dataset.dataset import Dataset")
        result = _circles(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode == 1
    assert "circle in qfnb.dataset: " in result.stdout and "_io" in result.stdout, result.stdout


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

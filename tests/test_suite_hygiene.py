"""The suite runs on its own temporary data dir (tests/conftest.py), never on ``~/.qfnb``."""

from __future__ import annotations

import ast
import os
import re
import tempfile
from pathlib import Path

from bench.house_metrics import untwinned
from qfnb.protocol.platform.daemon import default_data_dir
from tests.source_trees import parse_source


def test_the_run_has_its_own_temporary_data_dir() -> None:
    data = default_data_dir().resolve()
    assert data == Path(os.environ["QFNB_DATA_DIR"]).resolve()
    assert data.name.startswith("qfnb-test-data-") and data.parent == Path(tempfile.gettempdir()).resolve()
    assert not data.is_relative_to((Path.home() / ".qfnb").resolve())


# --- the suite's folders mirror the code's rooms (tests/README.md) ---------------------------------

ROOT = Path(__file__).resolve().parents[1]
# tests/<folder> tests qfnb/<package>; tests/core names qfnb/_core without its underscore
PACKAGE_OF_FOLDER = {"core": "_core"}


def _package_dir(tests_dir: Path, tests_root: Path, qfnb_dir: Path) -> Path | None:
    """The qfnb package a test folder (at any depth) mirrors, or None for a cross-cutting folder."""
    rel = tests_dir.relative_to(tests_root).parts
    pkg = qfnb_dir.joinpath(PACKAGE_OF_FOLDER.get(rel[0], rel[0]), *rel[1:])
    return pkg if (pkg / "__init__.py").exists() else None


def _mirrors(tests_root: Path, qfnb_dir: Path) -> list[tuple[Path, Path]]:
    """Each test folder, at any depth, with the qfnb package it mirrors."""
    folders = sorted(d for d in tests_root.rglob("*") if d.is_dir() and "__pycache__" not in d.parts)
    return [(folder, pkg) for folder in folders if (pkg := _package_dir(folder, tests_root, qfnb_dir)) is not None]


def _rooms(pkg: Path) -> set[str]:
    return {d.name for d in pkg.iterdir() if (d / "__init__.py").exists()}


def _parts_imported(test_file: Path, pkg: Path, qfnb_dir: Path) -> set[str]:
    """The parts of the package ``pkg`` a test imports: a room's name, or "" for a module at the
    package's top (a name from the package's ``__init__`` counts as neither)."""
    prefix = ["qfnb", *pkg.relative_to(qfnb_dir).parts]
    parts: set[str] = set()
    for node in ast.walk(parse_source(test_file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            bits = name.split(".")
            if bits[: len(prefix)] != prefix or len(bits) <= len(prefix):
                continue
            head = bits[len(prefix)]
            if (pkg / head / "__init__.py").exists():
                parts.add(head)
            elif (pkg / f"{head}.py").exists():
                parts.add("")
    return parts


def misplaced_tests(tests_root: Path, qfnb_dir: Path) -> list[str]:
    """Test files in a folder mirroring a package (at any depth: ``tests/local/server`` mirrors
    ``qfnb/local/server``) that import from one room of that package only (and from no module at its
    top): they belong in that room's folder."""
    wrong = []
    for folder, pkg in _mirrors(tests_root, qfnb_dir):
        if not _rooms(pkg):
            continue
        for test_file in sorted(folder.glob("test_*.py")):
            parts = _parts_imported(test_file, pkg, qfnb_dir)
            if len(parts) == 1 and "" not in parts:
                wrong.append(f"{test_file.relative_to(tests_root)} -> {folder.relative_to(tests_root)}/{parts.pop()}/")
    return wrong


def stray_room_folders(tests_root: Path, qfnb_dir: Path) -> list[str]:
    """Folders under ``tests/<package>/`` that name no room (folder) of ``qfnb/<package>/``."""
    stray = []
    for folder in sorted(d for d in tests_root.iterdir() if d.is_dir()):
        pkg = _package_dir(folder, tests_root, qfnb_dir)
        if pkg is None:
            continue
        for sub in sorted(d for d in folder.rglob("*") if d.is_dir() and "__pycache__" not in d.parts):
            if not (pkg / sub.relative_to(folder)).is_dir():
                stray.append(str(sub.relative_to(tests_root)))
    return stray


def unmapped_folders(tests_root: Path, qfnb_dir: Path, readme: str) -> list[str]:
    """Top-level test folders that mirror no qfnb package and that the suite's map (tests/README.md)
    does not name either: a cross-cutting or feature folder is one the map says is one, so a package's
    tests never sit apart from its mirror unnoticed."""
    named = set(re.findall(r"`([\w-]+)/`", readme))
    return [d.name for d in sorted(tests_root.iterdir()) if d.is_dir() and d.name != "__pycache__"
            and _package_dir(d, tests_root, qfnb_dir) is None and d.name not in named]


def test_every_test_folder_mirrors_a_package_or_is_on_the_map() -> None:
    assert unmapped_folders(ROOT / "tests", ROOT / "qfnb", (ROOT / "tests" / "README.md").read_text("utf-8")) == []


def test_a_test_of_one_room_sits_in_that_rooms_folder() -> None:
    assert misplaced_tests(ROOT / "tests", ROOT / "qfnb") == []


def test_every_code_folder_has_a_test_folder_of_its_name() -> None:
    assert untwinned(ROOT / "qfnb") == []


def test_every_room_folder_names_a_room_of_the_code() -> None:
    assert stray_room_folders(ROOT / "tests", ROOT / "qfnb") == []


def test_the_room_checks_catch_a_synthetic_misplacement(tmp_path: Path) -> None:
    code, tests = tmp_path / "qfnb", tmp_path / "tests"
    for d in (code / "pkg" / "alpha" / "inner", code / "pkg" / "beta", code / "flat", tests / "pkg" / "gamma",
              tests / "pkg" / "alpha", tests / "flat"):
        d.mkdir(parents=True)
    for f in (code / "pkg", code / "pkg" / "alpha", code / "pkg" / "alpha" / "inner", code / "pkg" / "beta",
              code / "flat"):
        (f / "__init__.py").write_text("")
    (code / "pkg" / "top.py").write_text("")
    files = {
        "pkg/test_one_room.py": "from qfnb.pkg.alpha.x import y\nfrom qfnb.pkg import Facade\n",
        "pkg/test_one_room_by_name.py": "from qfnb.pkg import beta\n",
        "pkg/test_two_rooms.py": "from qfnb.pkg.alpha import a\nimport qfnb.pkg.beta.b\n",
        "pkg/test_room_and_top.py": "from qfnb.pkg.alpha import a\nfrom qfnb.pkg.top import t\n",
        "pkg/test_no_room.py": "from qfnb.pkg import Facade\n",
        "flat/test_flat.py": "from qfnb.flat import x\n",
        "pkg/alpha/test_nested.py": "from qfnb.pkg.alpha.inner.z import w\n",  # a room's room
    }
    for name, text in files.items():
        (tests / name).write_text(text)
    assert misplaced_tests(tests, code) == [
        "pkg/test_one_room.py -> pkg/alpha/",
        "pkg/test_one_room_by_name.py -> pkg/beta/",
        "pkg/alpha/test_nested.py -> pkg/alpha/inner/",
    ]
    assert stray_room_folders(tests, code) == ["pkg/gamma"]
    (tests / "feature").mkdir()
    (tests / "loose").mkdir()
    assert unmapped_folders(tests, code, "| `feature/` | a feature end to end |") == ["loose"]


def test_no_two_test_modules_share_a_file_name() -> None:
    """pytest imports a test module whose folder has no ``__init__.py`` by its file name alone, so two such
    ``test_x.py`` in different folders collide: the second is not collected ("import file mismatch")."""
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if not (path.parent / "__init__.py").exists():
            seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}

"""mypy proves the seed's import paths typed (``check_seed_paths.py``), and would see an ``Any``."""

from __future__ import annotations

from pathlib import Path

from tests.typing.mypy_run import ROOT, run_mypy


def test_seed_path_console_calls_are_typed() -> None:
    done = run_mypy(ROOT / "tests/typing/check_seed_paths.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_untyped_seed_name_fails_the_check(tmp_path: Path) -> None:
    """What the check catches: a name the lazy ``__getattr__`` gives as ``Any``."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import assert_type\nfrom qfnb._core.http.response import QfResponse\n"
                     "import qfnb.resources\n"
                     "assert_type(qfnb.resources.NoSuchConsole.list(), QfResponse)\n", encoding="utf-8")
    done = run_mypy(probe)
    assert done.returncode == 1 and 'Expression is of type "Any"' in done.stdout, done.stdout

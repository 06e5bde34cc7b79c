"""mypy proves the seed's import paths typed (``check_seed_paths.py``), and would see an ``Any``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MYPY = ("-m", "mypy", "--strict", "--warn-unused-ignores", "--follow-imports=silent", "--no-incremental")


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *MYPY, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_seed_path_console_calls_are_typed() -> None:
    done = _mypy(ROOT / "tests/typing/check_seed_paths.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_untyped_seed_name_fails_the_check(tmp_path: Path) -> None:
    """What the check catches: a name the lazy ``__getattr__`` gives as ``Any``."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import assert_type\nfrom qfnb._core.http.response import QfResponse\n"
                     "import qfnb.resources\n"
                     "assert_type(qfnb.resources.NoSuchConsole.list(), QfResponse)\n", encoding="utf-8")
    done = _mypy(probe)
    assert done.returncode == 1 and 'Expression is of type "Any"' in done.stdout, done.stdout

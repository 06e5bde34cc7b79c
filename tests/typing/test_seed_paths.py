"""mypy proves the seed's import paths typed (``check_seed_paths.py``), and would see an ``Any``."""

from __future__ import annotations

import pytest

from tests.typing.mypy_run import shared_mypy


def test_seed_path_console_calls_are_typed(tmp_path_factory: pytest.TempPathFactory) -> None:
    done = shared_mypy(tmp_path_factory)
    assert not done.check("tests/typing/check_seed_paths.py"), done.stdout + done.stderr


def test_an_untyped_seed_name_fails_the_check(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What the check catches: a name the lazy ``__getattr__`` gives as ``Any`` (probe_untyped.py:
    mypy_run.PROBES)."""
    done = shared_mypy(tmp_path_factory)
    errors = done.check("probe_untyped.py")
    assert done.returncode == 1 and 'Expression is of type "Any"' in errors, done.stdout

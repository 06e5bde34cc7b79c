"""Suite-wide fixtures: ``local_platform`` (the local platform's app with engine doubles, served on
127.0.0.1), and local platform daemons started by the tests are stopped by them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from qfnb._core.backend import daemon
from qfnb.protocol.daemon import RUNTIME_FILE, default_data_dir

if TYPE_CHECKING:
    from tests.fakes.local_platform import ServedPlatform


@pytest.fixture
def local_platform(tmp_path: Path) -> Iterator[ServedPlatform]:
    """The local platform's app on ``tmp_path/platform`` (see ``tests/fakes/local_platform.py``):
    ``.config()``, ``.set_env(monkeypatch)`` or ``.as_default_backend(monkeypatch)`` point qfnb at it."""
    from tests.fakes.local_platform import served_platform

    with served_platform(tmp_path / "platform") as served:
        yield served


def _stop(root: Path) -> None:
    try:
        daemon.stop_daemon(root, force=True, timeout=30)
    except Exception as exc:
        raise RuntimeError(f"could not stop the daemon of {root}: {exc}") from exc


@pytest.fixture(autouse=True)
def _stop_daemons_of_temp_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A daemon a test started (in this process) on a temporary data dir stops with the test."""
    before = set(daemon._known)
    yield
    base = tmp_path_factory.getbasetemp().resolve()
    for root in set(daemon._known) - before:
        if root.is_relative_to(base):
            _stop(root)


@pytest.fixture(scope="session", autouse=True)
def _stop_daemons_at_exit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end: the session data dir's daemon, and any left in temporary dirs (e.g. started
    by a notebook kernel), are stopped."""
    yield
    roots = {default_data_dir().resolve(), *daemon._known}
    roots.update(p.parent for p in tmp_path_factory.getbasetemp().rglob(RUNTIME_FILE))
    for root in roots:
        if (root / RUNTIME_FILE).exists():
            _stop(root)

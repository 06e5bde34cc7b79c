"""Suite-wide fixtures: ``local_platform`` (the local platform's app with engine doubles, served on
127.0.0.1), and local platform daemons started by the tests are stopped by them.

Every run gets its own temporary ``QFNB_DATA_DIR`` (set before collection, removed at the end),
whatever the caller's environment says: the suite never reads or writes ``~/.qfnb`` (or a data
dir the user exported) and never stops a daemon it did not start."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from qfnb._core.backend import daemon
from qfnb.protocol.platform.daemon import RUNTIME_FILE, default_data_dir

if TYPE_CHECKING:
    from tests.fakes.local_platform import ServedPlatform


_SESSION_DATA: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """A fresh ``QFNB_DATA_DIR`` for this run (subprocesses and kernels inherit it)."""
    _SESSION_DATA["previous"] = os.environ.get("QFNB_DATA_DIR")
    _SESSION_DATA["dir"] = os.environ["QFNB_DATA_DIR"] = tempfile.mkdtemp(prefix="qfnb-test-data-")


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Collect with the cyclic garbage collector off, then set what collection imported (pandas,
    scipy, matplotlib, the client SDKs: ~800,000 objects) aside from it for the rest of the run
    (``gc.freeze()``) and turn it back on. Each full collection walks every tracked object: while
    collecting, as the heap grew, they took half of its CPU time (5 of 10 s from bytecode, 11 of 23 s
    from source), in each xdist worker and in the serial run; during the tests they walked those
    objects again (tests/README.md). An xdist controller collects nothing: there the wrapper only
    freezes what it had."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        gc.enable()


def pytest_unconfigure(config: pytest.Config) -> None:
    made = _SESSION_DATA.pop("dir", None)
    previous = _SESSION_DATA.pop("previous", None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        if previous is None:
            os.environ.pop("QFNB_DATA_DIR", None)
        else:
            os.environ["QFNB_DATA_DIR"] = previous


def session_data_dir() -> Path:
    """This run's temporary data dir."""
    return Path(str(_SESSION_DATA["dir"])).resolve()


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


@pytest.fixture
def daemon_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``QFNB_DATA_DIR`` for a test that runs the real daemon there (no ``QIANFAN_*`` settings, a
    cache dir of its own); the daemon is stopped after the test, SIGKILLed if it will not stop."""
    root = tmp_path / "data"
    for key in [k for k in os.environ if k.startswith("QIANFAN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("QFNB_DATA_DIR", str(root))
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    yield root
    info = daemon.read_runtime(root)
    daemon._known.pop(root.resolve(), None)
    if info is not None:
        try:
            daemon.stop_daemon(root, force=True, timeout=20)
        except Exception:
            os.kill(info.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def default_models_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The data dir of one daemon on the default local models, shared by the real-path client tests
    that only send it calls (openai, anthropic, Responses, LangChain, the agent frameworks, the
    conformance walk): each starting its own cost a daemon start and two model loads. A test that
    reads the daemon's ledger or restarts it starts its own."""
    import qfnb

    root = tmp_path_factory.mktemp("default-models") / "data"
    qfnb.openai_client(data_dir=root)  # starts it here, outside any test (nothing stops it early)
    yield root
    _stop(root)


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
    """At the end: daemons of this run's data dir and of temporary dirs (e.g. started by a
    notebook kernel) are stopped; a daemon anywhere else is never touched."""
    yield
    base, session = tmp_path_factory.getbasetemp().resolve(), session_data_dir()
    roots = {default_data_dir().resolve(), *daemon._known}
    roots.update(p.parent for p in base.rglob(RUNTIME_FILE))
    for root in roots:
        ours = root.resolve().is_relative_to(base) or root.resolve().is_relative_to(session)
        if ours and (root / RUNTIME_FILE).exists():
            _stop(root)


@pytest.fixture(autouse=True)
def _no_record_state_across_tests() -> Iterator[None]:
    """A test that loaded the notebook extension turned this process's response cache on, or set a
    budget, or set credentials (``qfnb.AK("...")``, ``get_config().AK = ...``, ``QIANFAN_AK``):
    none of it may leak into the next test (drop-in SDK calls are not cached by default, and a
    leaked key sends later tests to the cloud)."""
    import qfnb._core.config
    from qfnb._core.record.budget import clear_budget
    from qfnb._core.record.cache import set_process_mode

    before = {k: v for k, v in os.environ.items() if k.startswith("QIANFAN_")}
    settings = qfnb._core.config._GLOBAL_CONFIG
    saved = None if settings is None else settings.settings()
    yield
    set_process_mode("off")
    clear_budget()
    if saved is None:
        qfnb._core.config._GLOBAL_CONFIG = None
    else:
        qfnb._core.config._GLOBAL_CONFIG = qfnb._core.config.GlobalConfig(**saved)
    for key in [k for k in os.environ if k.startswith("QIANFAN_")]:  # qfnb.AK("...") & co. write these
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


@pytest.fixture
def own_record_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's own response cache and usage ledger (``QFNB_DATA_DIR`` in ``tmp_path``), no budget."""
    from qfnb._core.record import cache as cache_mod
    from qfnb._core.record import ledger as ledger_mod
    from qfnb._core.record.budget import clear_budget

    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))
    cache_mod._default.clear()
    ledger_mod._default.clear()
    clear_budget()


@pytest.fixture
def keyed_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The ``(route, Idempotency-Key)`` of each keyed create the local platform runs in this process
    (:func:`qfnb.local.domain.records.keyed_creates.run_once`), in order."""
    from qfnb.local.domain.records import keyed_creates

    seen: list[tuple[str, str]] = []
    real = keyed_creates.run_once

    def noted(store: Any, owner: str, key: str, route: str, body: Any, create: Any) -> Any:
        seen.append((route, key))
        return real(store, owner, key, route, body, create)

    monkeypatch.setattr(keyed_creates, "run_once", noted)
    return seen

"""Fixtures for the notebook layer: an in-process IPython shell that records displays."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import FakeChatBackend, RecordingPublisher
from traitlets.config import Config

from qfnb._core.http import client as client_mod
from qfnb._core.record.cache import set_process_mode
from qfnb.notebook import notices
from qfnb.notebook.models.discovery import ModelList
from tests.fakes.fixtures import fake, fake_server, make_config  # noqa: F401 - the fake cloud, for SDK calls in a shell
from tests.fakes.fixtures_v2 import cloud_v2  # noqa: F401 - the 2026 cloud (a v2 API key alone)


@pytest.fixture(autouse=True)
def _own_answer_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """%qfeval keeps answers to reuse them; each test starts with an empty store of its own."""
    monkeypatch.setenv("QFNB_EVAL_STORE", str(tmp_path_factory.mktemp("answers") / "answers.sqlite"))


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    cfg = Config()
    shell = InteractiveShell.instance(config=cfg)
    pub = RecordingPublisher(shell=shell)
    old = shell.display_pub
    shell.display_pub = pub
    shell.extension_manager.load_extension("qfnb")
    magics = shell.magics_manager.registry["QfnbMagics"]
    magics.list_models = lambda: ModelList([], "test: no platform listing")  # tests that need one set it
    yield shell
    notices.unregister(shell)  # the warning handler the extension installed
    shell.display_pub = old
    InteractiveShell.clear_instance()
    set_process_mode("off")  # loading the extension turned this process's response cache on


@pytest.fixture
def pub(ip: InteractiveShell) -> RecordingPublisher:
    assert isinstance(ip.display_pub, RecordingPublisher)
    return ip.display_pub


@pytest.fixture
def backend(ip: InteractiveShell) -> FakeChatBackend:
    double = FakeChatBackend()
    magics = ip.magics_manager.registry["QfnbMagics"]
    magics.chat_backend = double
    return double


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No QIANFAN_* settings, so qfnb starts (or reuses) the embedded platform on QFNB_DATA_DIR."""
    for name in [n for n in os.environ if n.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    client_mod._CLIENTS.clear()
    yield
    client_mod._CLIENTS.clear()


class _SharedLab:
    """One JupyterLab a pytest process (``browser_kit.jupyter_lab``), started again (with a warning
    that carries the dead one's last output) when it no longer answers."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._factory = tmp_path_factory
        self._stack = contextlib.ExitStack()
        self.running = self._start()

    def _start(self) -> tuple[str, Path, str]:
        from browser_kit import jupyter_lab

        return self._stack.enter_context(jupyter_lab(self._factory.mktemp("lab")))

    def live(self) -> tuple[str, Path, str]:
        from browser_kit import answers, log_tail

        if not answers(self.running):
            warnings.warn(f"the shared JupyterLab stopped answering; started again. Its last output:\n"
                          f"{log_tail(self.running[1])}", stacklevel=1)
            self._stack.close()
            self.running = self._start()
        return self.running

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def _shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SharedLab]:
    """The browser tests that need no daemon or settings of their own share one JupyterLab a pytest
    process: a start costs seconds, and each module used to start its own."""
    shared = _SharedLab(tmp_path_factory)
    yield shared
    shared.close()


@pytest.fixture
def lab(_shared_lab: _SharedLab) -> Iterator[tuple[str, Path, str]]:
    """The shared JupyterLab ``(base URL, root, token)``; the kernels the test's notebooks started
    are shut down after it (each test names its notebooks apart)."""
    from browser_kit import answers, shut_down_kernels

    running = _shared_lab.live()
    yield running
    if answers(running):  # (one that died in the test: the next test's start says so)
        shut_down_kernels(running)


@pytest.fixture
def cloud_env(fake: Any, monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811 - the fixture imported above
    """The SDK's environment pointed at the fake cloud (over a socket), as a user's keys would."""
    names = {"ak": "QIANFAN_AK", "sk": "QIANFAN_SK", "access_key": "QIANFAN_ACCESS_KEY",
             "secret_key": "QIANFAN_SECRET_KEY", "base_url": "QIANFAN_BASE_URL",
             "console_api_base_url": "QIANFAN_CONSOLE_API_BASE_URL", "iam_base_url": "QIANFAN_IAM_BASE_URL"}
    for key, value in fake.env(fake.base_url, "both").items():
        monkeypatch.setenv(names[key], value)
    return fake

"""Fixtures for the notebook layer: an in-process IPython shell that records displays."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import FakeChatBackend, RecordingPublisher
from traitlets.config import Config

from qfnb._core.record.cache import set_process_mode
from tests.fakes.fixtures import fake, fake_server, make_config  # noqa: F401 - the fake cloud, for SDK calls in a shell


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
    yield shell
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

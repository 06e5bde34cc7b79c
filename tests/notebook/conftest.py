"""Fixtures for the notebook layer: an in-process IPython shell that records displays."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import FakeChatBackend, RecordingPublisher
from traitlets.config import Config

from qfnb._core.record.cache import set_process_mode


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
    fake = FakeChatBackend()
    magics = ip.magics_manager.registry["QfnbMagics"]
    magics.chat_backend = fake
    return fake

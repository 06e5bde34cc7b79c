"""pytest fixtures around the 2026 cloud double (:class:`tests.fakes.cloud_v2.FakeQianfanV2`).

Import them into a test module or conftest:
``from tests.fakes.fixtures_v2 import cloud_v2, fake_server, key_only_config, key_only_env  # noqa: F401``
(``fake_server`` is the session's socket server from :mod:`tests.fakes.fixtures`, needed by
``cloud_v2`` under ``@pytest.mark.sockets``).

``cloud_v2`` is called in-process (``cloud_v2.transport`` set) unless the test is marked
``@pytest.mark.sockets`` (a subprocess or a kernel must reach it): then it is served over a real
socket and ``cloud_v2.transport`` is None.

* ``key_only_config(fake)``: Config keyword arguments with ONLY the API key, the fake's URLs and its
  transport: ``Config.from_env({}, **key_only_config(cloud_v2))``;
* ``key_only_env(fake)``: environment variables for a subprocess or kernel (socket-served fake only):
  the API key and URLs, and the other credential variables set empty (an empty variable sets
  nothing), so ``{**os.environ, **key_only_env(fake)}`` is a key-only environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from qfnb._core.env import API_KEY_VAR, ENV

from .cloud_v2 import FakeQianfanV2
from .fixtures import attached, fake_server

__all__ = ["cloud_v2", "fake_server", "key_only_config", "key_only_env"]

#: the credentials a 2026 account does not use, masked in :func:`key_only_env`
_OTHER_CREDENTIALS = ("ak", "sk", "access_token", "bearer_token", "access_key", "secret_key")


@pytest.fixture
def cloud_v2(request: pytest.FixtureRequest) -> Iterator[FakeQianfanV2]:
    """A fresh 2026 account (``cloud_v2.key``, ``cloud_v2.models``, ``cloud_v2.v1_calls()``), in-process
    unless the test is marked ``sockets``."""
    in_process = request.node.get_closest_marker("sockets") is None
    yield from attached(FakeQianfanV2(), request, in_process=in_process)


def key_only_config(fake: FakeQianfanV2) -> dict[str, Any]:
    """Config kwargs with only the v2 API key: ``{"api_key", "base_url", "console_api_base_url",
    "iam_base_url", "transport"}`` (transport None when the fake is socket-served)."""
    return fake.config_kwargs()


def key_only_env(fake: FakeQianfanV2) -> dict[str, str]:
    """Environment variables pointing a subprocess at ``fake`` with only the API key
    (``QIANFAN_API_KEY``, ``QIANFAN_BASE_URL``, ``QIANFAN_CONSOLE_API_BASE_URL``,
    ``QIANFAN_IAM_BASE_URL``; ``QIANFAN_AK`` … ``QIANFAN_SECRET_KEY`` empty). The fake must be
    socket-served (``@pytest.mark.sockets``): another process cannot reach an in-process one."""
    if fake.transport is not None or not fake.base_url.startswith("http://127.0.0.1"):
        raise ValueError("key_only_env needs a socket-served fake: mark the test @pytest.mark.sockets")
    env = {ENV[name][0]: "" for name in _OTHER_CREDENTIALS}
    env.update({API_KEY_VAR: fake.key, **{ENV[name][0]: fake.base_url
                                          for name in ("base_url", "console_api_base_url", "iam_base_url")}})
    return env

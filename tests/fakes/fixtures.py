"""pytest fixtures around the fake cloud. Import them into a test module or conftest:
``from tests.fakes.fixtures import fake, fake_server, make_config  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from qfnb._core import client as client_mod
from qfnb._core.config import Config

from .cloud import FakeQianfan, serve


class _Swap:
    """One server for the session; each test swaps in a fresh FakeQianfan."""

    def __init__(self) -> None:
        self.app: Any = FakeQianfan()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[_Swap, str]]:
    swap = _Swap()
    with serve(swap) as url:
        yield swap, url


@pytest.fixture
def fake(fake_server: tuple[_Swap, str]) -> Iterator[FakeQianfan]:
    """A fresh fake platform (``fake.base_url`` is where it listens); clients are not shared
    between tests."""
    swap, url = fake_server
    swap.app = FakeQianfan()
    swap.app.base_url = url
    client_mod._CLIENTS.clear()
    yield swap.app
    client_mod._CLIENTS.clear()


@pytest.fixture
def make_config(fake: FakeQianfan) -> Callable[..., Config]:
    """``make_config(mode="oauth"|"iam"|"both", **overrides)`` → a Config for the fake
    (no environment read; fast retries)."""

    def make(mode: str = "both", **overrides: Any) -> Config:
        values: dict[str, Any] = {**fake.env(fake.base_url, mode), "llm_api_retry_backoff_factor": 0.01,
                                  "llm_api_retry_jitter": 0.01, **overrides}
        return Config.from_env({}, **values)

    return make

"""pytest fixtures around the fake cloud. Import them into a test module or conftest:
``from tests.fakes.fixtures import fake, fake_server, make_config  # noqa: F401``.

``fake`` is called in-process through :class:`qfnb._core.transport.asgi.ASGITransport` (no
socket; ``fake.transport`` is set and ``make_config`` injects it) where the ``fake_in_process``
fixture below is visible (imported by the conftests of tests/core, tests/resources,
tests/resources/console, tests/dataset, tests/model and tests/evaluation), and over a real uvicorn server
otherwise or when a test is marked ``@pytest.mark.sockets`` (a subprocess or a kernel must reach
it, or the real HTTP path is tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from qfnb._core.config import Config
from qfnb._core.http import client as client_mod
from qfnb._core.transport.asgi import ASGITransport

from .cloud import FakeQianfan, serve

#: the base URL of an in-process fake (never resolved: its transport does not use the network)
IN_PROCESS_URL = "http://qianfan.fake"


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
def fake_in_process() -> bool:
    """Import this into a conftest (or module) to call ``fake`` in-process there."""
    return True


def _in_process(request: pytest.FixtureRequest) -> bool:
    if request.node.get_closest_marker("sockets") is not None:
        return False
    try:
        return bool(request.getfixturevalue("fake_in_process"))
    except pytest.FixtureLookupError:
        return False


F = TypeVar("F", bound=FakeQianfan)


def attached(app: F, request: pytest.FixtureRequest, *, in_process: bool) -> Iterator[F]:
    """Serve ``app`` for one test: in-process (``app.transport`` set, ``app.base_url`` =
    :data:`IN_PROCESS_URL`) or swapped into the session's socket server (``fake_server``;
    ``app.transport`` None). qfnb's shared clients are dropped before and after."""
    if in_process:
        app.base_url = IN_PROCESS_URL
        # a handler that raises answers HTTP 500, as it would behind uvicorn
        app.transport = ASGITransport(app, raise_app_exceptions=False)  # type: ignore[arg-type]
    else:
        swap, url = request.getfixturevalue("fake_server")
        swap.app = app
        app.base_url = url
        app.transport = None
    client_mod._CLIENTS.clear()
    yield app
    client_mod._CLIENTS.clear()


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeQianfan]:
    """A fresh fake platform (``fake.base_url`` is where it answers; ``fake.transport`` reaches
    it in-process, or is None when it is served over a socket); clients are not shared between tests."""
    yield from attached(FakeQianfan(), request, in_process=_in_process(request))


@pytest.fixture
def make_config(fake: FakeQianfan) -> Callable[..., Config]:
    """``make_config(mode="oauth"|"iam"|"both", **overrides)`` → a Config for the fake
    (no environment read; fast retries; the fake's transport when it is in-process)."""

    def make(mode: str = "both", **overrides: Any) -> Config:
        values: dict[str, Any] = {**fake.env(fake.base_url, mode), "llm_api_retry_backoff_factor": 0.01,
                                  "llm_api_retry_jitter": 0.01, "transport": fake.transport, **overrides}
        return Config.from_env({}, **values)

    return make

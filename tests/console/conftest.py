import pytest

from tests.fakes.console_fixtures import *  # noqa: F403


@pytest.fixture
def fake_in_process() -> bool:
    """Console calls reach the fake in-process (``@pytest.mark.sockets``: over uvicorn)."""
    return True

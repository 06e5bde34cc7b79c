import pytest

from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_in_process", "fake_server", "make_config"]


@pytest.fixture
def fake_in_process() -> bool:
    """The client tests here reach the fake in-process (``@pytest.mark.sockets``: over uvicorn)."""
    return True

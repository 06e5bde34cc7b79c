import pytest


@pytest.fixture
def fake_in_process() -> bool:
    """The resources reach the fake in-process (``@pytest.mark.sockets``: over uvicorn)."""
    return True

"""Fixtures for the evaluation tests: the fake cloud from tests/fakes."""

from tests.fakes.fixtures import fake, fake_in_process, fake_server, make_config  # noqa: F401

from tests.fakes.console_fixtures import *  # noqa: F403

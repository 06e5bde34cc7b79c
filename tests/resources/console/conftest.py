from tests.fakes.console_fixtures import *  # noqa: F403
from tests.fakes.fixtures import fake_in_process  # noqa: F401

from tests.fakes.fixtures import fake_in_process
from tests.fakes.fixtures_v2 import cloud_v2

__all__ = ["cloud_v2", "fake_in_process"]

from tests.fakes.fixtures import fake_in_process

__all__ = ["fake_in_process"]

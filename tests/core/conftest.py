from tests.fakes.fixtures import fake, fake_in_process, fake_server, make_config

__all__ = ["fake", "fake_in_process", "fake_server", "make_config"]

from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_server", "make_config"]

"""Fixtures for console/trainer tests: ``cloud`` (the stateful console double) and ``cfg``
(a Config for it with v1 and IAM keys, BOS endpoint and fast polling). Import into a conftest:
``from tests.fakes.console_fixtures import *  # noqa: F403``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qfnb._core.config import Config

from .cloud import FakeQianfan
from .console_cloud import ConsoleCloud
from .fixtures import fake, fake_server, make_config

__all__ = ["cfg", "cloud", "fake", "fake_server", "make_config"]

FAST = {"train_status_polling_interval": 0.01, "model_publish_status_polling_interval": 0.01,
        "deploy_status_polling_interval": 0.01, "import_status_polling_interval": 0.01,
        "release_status_polling_interval": 0.01, "export_status_polling_interval": 0.01,
        "evaluation_online_polling_interval": 0.01}


@pytest.fixture
def cloud(fake: FakeQianfan) -> ConsoleCloud:
    return ConsoleCloud(fake)


@pytest.fixture
def cfg(cloud: ConsoleCloud, make_config: Callable[..., Config]) -> Config:
    values: dict[str, Any] = {**FAST, "bos_endpoint": cloud.fake.base_url + "/bos"}
    # a v1-era account (v1 app keys beside the IAM pair: ``api_version`` 1), whose data sets are the
    # v1 console's; a 2026 account (IAM keys alone) is tests.fakes.cloud_v2_console's
    return make_config("both", **values)

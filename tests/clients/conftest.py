"""Client-package tests share the local platform's test doubles (tests/local) and ``served``, the
platform's app with engine doubles that the route-client tests call."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.fakes.local_platform import ServedPlatform

LOCAL = str(Path(__file__).resolve().parents[1] / "local")
if LOCAL not in sys.path:
    sys.path.insert(0, LOCAL)


@pytest.fixture()
def served(local_platform: ServedPlatform) -> ServedPlatform:
    """The suite's ``local_platform`` fixture, under the name the route-client tests call it by."""
    return local_platform

"""``client``: the local platform's app in-process on a temporary data dir, with the engine doubles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_helpers import client_for


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[Any]:
    with client_for(tmp_path) as c:
        yield c

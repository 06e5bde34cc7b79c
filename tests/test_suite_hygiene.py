"""The suite runs on its own temporary data dir (tests/conftest.py), never on ``~/.qfnb``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from qfnb.protocol.daemon import default_data_dir


def test_the_run_has_its_own_temporary_data_dir() -> None:
    data = default_data_dir().resolve()
    assert data == Path(os.environ["QFNB_DATA_DIR"]).resolve()
    assert data.name.startswith("qfnb-test-data-") and data.parent == Path(tempfile.gettempdir()).resolve()
    assert not data.is_relative_to((Path.home() / ".qfnb").resolve())

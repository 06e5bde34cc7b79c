"""Model-store tests share the local platform's test helpers (tests/local: starting bare servers),
and ``client``: the platform's app in-process with the store's control routes (their token sent)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.server.app import create_app
from qfnb.local.server.routes.daemon import control
from qfnb.local.settings import Credentials, Settings
from qfnb.protocol.platform.daemon import CONTROL_HEADER

LOCAL = str(Path(__file__).resolve().parents[1] / "local")
if LOCAL not in sys.path:
    sys.path.insert(0, LOCAL)

TOKEN = "control-token-for-tests"
CREDS = Credentials(api_key="test-ak", secret_key="test-sk", access_key="test-access", iam_secret_key="test-secret")


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    settings = Settings(data_dir=tmp_path / "data", credentials=CREDS, worker_command=(sys.executable, "-c", "0"))
    registry = EngineRegistry(settings.data_dir, options=EngineOptions(slots=2))
    app = create_app(settings, registry, extra_routes=control.routes(TOKEN, time.time(), "test", lambda: None))
    with TestClient(app, headers={CONTROL_HEADER: TOKEN}) as c:
        yield c

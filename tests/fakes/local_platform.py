"""The local platform's app (engine doubles, the fast stand-in training worker) served on
127.0.0.1 for client-side tests, and the three ways to point qfnb at it: a ``Config``, the
``QIANFAN_*`` environment, or the default backend. The ``local_platform`` fixture in
``tests/conftest.py`` is the usual entry; :func:`served_platform` takes settings.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from qfnb._core import config as config_mod
from qfnb._core.config import Config
from qfnb._core.http import client as client_mod

from .cloud import serve

sys.path.insert(0, str(Path(__file__).parents[1] / "local"))
from platform_doubles import FakeRegistry
from platform_helpers import CREDS, Signer, make_settings

__all__ = ["CREDS", "FakeRegistry", "ServedPlatform", "served_platform"]

#: every status poll at 50 ms (the platform's own worker polls at the same pace)
POLLS = ("train", "model_publish", "deploy", "import", "release", "export")


@dataclass
class ServedPlatform:
    url: str
    app: Any
    registry: FakeRegistry

    def bearer_token(self) -> str:
        """A bearer token minted by this platform's IAM route (what an OpenAI-style client sends as its key)."""
        return str(httpx.get(self.url + "/v1/BCE-BEARER/token", auth=Signer()).json()["token"])

    def config(self, **overrides: Any) -> Config:
        """A Config for this platform (both key pairs, its BOS endpoint, fast polls)."""
        values: dict[str, Any] = {
            "base_url": self.url, "console_api_base_url": self.url, "iam_base_url": self.url,
            "bos_endpoint": self.url + "/bos", "ak": CREDS.api_key, "sk": CREDS.secret_key,
            "access_key": CREDS.access_key, "secret_key": CREDS.iam_secret_key,
            **{f"{name}_status_polling_interval": 0.05 for name in POLLS},
            "evaluation_online_polling_interval": 0.05}
        return Config.from_env({}, **{**values, **overrides})

    def env(self) -> dict[str, str]:
        """The same as ``QIANFAN_*`` environment variables (what a user's notebook would set)."""
        return {"QIANFAN_BASE_URL": self.url, "QIANFAN_CONSOLE_API_BASE_URL": self.url,
                "QIANFAN_IAM_BASE_URL": self.url, "QFNB_BOS_ENDPOINT": self.url + "/bos",
                "QIANFAN_AK": CREDS.api_key, "QIANFAN_SK": CREDS.secret_key,
                "QIANFAN_ACCESS_KEY": CREDS.access_key, "QIANFAN_SECRET_KEY": CREDS.iam_secret_key,
                **{f"QIANFAN_{name.upper()}_STATUS_POLLING_INTERVAL": "0.05" for name in POLLS}}

    def set_env(self, monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
        for name, value in {**self.env(), **extra}.items():
            monkeypatch.setenv(name, value)
        client_mod._CLIENTS.clear()

    def as_default_backend(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No credentials in the environment: qfnb finds this platform as it finds its daemon."""
        for key in [k for k in __import__("os").environ if k.startswith("QIANFAN_") and k != "QIANFAN_CACHE_DIR"]:
            monkeypatch.delenv(key)
        backend = SimpleNamespace(base_url=self.url, api_key=CREDS.api_key, secret_key=CREDS.secret_key,
                                  access_key=CREDS.access_key, iam_secret_key=CREDS.iam_secret_key,
                                  default_models={"chat": "Tiny-Chat"})
        monkeypatch.setattr(config_mod, "_default_backend", lambda: backend)
        client_mod._CLIENTS.clear()


@contextlib.contextmanager
def served_platform(data_dir: Path, *, registry: FakeRegistry | None = None,
                    **settings: Any) -> Iterator[ServedPlatform]:
    """The app on ``data_dir`` (``settings`` go to the local platform's ``Settings``), served on a
    thread; qfnb's cached clients are dropped before and after."""
    from qfnb.local.server.app import create_app

    registry = registry or FakeRegistry()
    app = create_app(make_settings(data_dir, **settings), registry)
    with serve(app, lifespan="on") as url:
        client_mod._CLIENTS.clear()
        try:
            yield ServedPlatform(url, app, registry)
        finally:
            client_mod._CLIENTS.clear()

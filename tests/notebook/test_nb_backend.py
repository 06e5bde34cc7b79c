"""``qfnb.backend()``: where qfnb talks and why; a cloud connection failure names the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qfnb
from qfnb._core.config import Config
from qfnb.errors import ConnectionError as QfnbConnectionError
from qfnb.resources.where import connection_hint

CLOUD_ENV = ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_ACCESS_TOKEN",
             "QIANFAN_BEARER_TOKEN", "QIANFAN_BASE_URL", "QIANFAN_API_KEY", "QIANFAN_CONSOLE_API_BASE_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CLOUD_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_keys_is_local_and_says_why(clean_env: pytest.MonkeyPatch) -> None:
    where = qfnb.backend(Config.from_env())
    assert where.kind == "local" and "no Qianfan credentials" in where.reason and where.label == "local"


def test_a_key_in_the_environment_chooses_the_cloud_and_is_named(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("QIANFAN_AK", "a-wrong-key-0123")
    where = qfnb.backend(Config.from_env())
    assert where.kind == "cloud" and where.variables == ("QIANFAN_AK",)
    assert where.label == "cloud (QIANFAN_AK set)" and "a-wrong-key" not in str(where)  # never the value
    hint = connection_hint(QfnbConnectionError("Cannot connect to host aip.baidubce.com: Name or service not known"))
    assert "because QIANFAN_AK is set" in hint and "unset QIANFAN_AK" in hint
    assert connection_hint(ValueError("bad temperature")) == ""  # only failed connections


def test_the_local_platforms_own_key_is_local(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The local platform is told by its credential (the data dir's credentials file), not its address."""
    clean_env.setenv("QFNB_DATA_DIR", str(tmp_path))
    (tmp_path / "credentials.json").write_text(json.dumps({"api_key": "local-k", "secret_key": "s",
                                                           "access_key": "local-ak", "iam_secret_key": "t"}))
    clean_env.setenv("QIANFAN_BASE_URL", "http://127.0.0.1:8765")
    clean_env.setenv("QIANFAN_AK", "local-k")
    where = qfnb.backend(Config.from_env())
    assert where.kind == "local" and "the local platform's own" in where.reason and "local-k" not in str(where)
    assert connection_hint(QfnbConnectionError("refused")) == ""


@pytest.mark.parametrize("url_var", ["QIANFAN_BASE_URL", "QIANFAN_CONSOLE_API_BASE_URL"])
def test_a_cloud_key_through_a_proxy_on_this_machine_is_the_cloud(clean_env: pytest.MonkeyPatch, tmp_path: Path,
                                                                   url_var: str) -> None:
    """A v2 key with a loopback address (a proxy on the same host) was called kind='local'."""
    clean_env.setenv("QFNB_DATA_DIR", str(tmp_path))  # no local platform's keys there
    clean_env.setenv("QIANFAN_API_KEY", "bce-v3/ALTAK-abc/def")
    clean_env.setenv(url_var, "http://127.0.0.1:8899")
    where = qfnb.backend(Config.from_env())
    assert where.kind == "cloud" and "v2 API" in where.reason and "ALTAK" not in str(where)
    if url_var == "QIANFAN_CONSOLE_API_BASE_URL":  # the v2 route's own address: said to be a proxy here
        assert "an address on this machine (a proxy)" in where.reason
    clean_env.setenv("QIANFAN_AK", "some-v1-key")  # a v1 key at a loopback address is no local platform's either
    clean_env.delenv("QIANFAN_API_KEY")
    assert qfnb.backend(Config.from_env()).kind == "cloud"

"""``qfnb.backend()``: where qfnb talks and why; a cloud connection failure names the variable."""

from __future__ import annotations

import pytest

import qfnb
from qfnb._core.config import Config
from qfnb.errors import ConnectionError as QfnbConnectionError
from qfnb.resources.where import connection_hint

CLOUD_ENV = ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_ACCESS_TOKEN",
             "QIANFAN_BEARER_TOKEN", "QIANFAN_BASE_URL")


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


def test_a_local_address_is_local(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("QIANFAN_BASE_URL", "http://127.0.0.1:8765")
    clean_env.setenv("QIANFAN_AK", "k")
    where = qfnb.backend(Config.from_env())
    assert where.kind == "local" and "this machine" in where.reason
    assert connection_hint(QfnbConnectionError("refused")) == ""

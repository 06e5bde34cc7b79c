"""How a console call leaves (qfnb.resources.console.sending): which console an account speaks, the IAM key
pair refused by name before anything is sent (no secret in the message), a builder's argument checks naming
the field, and a call's config overrides kept out of its body."""

from __future__ import annotations

import enum

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb.resources.console.sending.account import MissingConsoleKeysError, console_v2, require_iam_keys
from qfnb.resources.console.sending.sender import body_fields, compact, member, paged, require, require_id


def test_a_v2_key_on_the_cloud_speaks_the_v2_console_and_the_embedded_platform_v1() -> None:
    assert console_v2(Config(bearer_token="bce-v3/ALTAK-x/y"))
    assert not console_v2(Config(bearer_token="bce-v3/ALTAK-x/y", embedded=True))
    assert not console_v2(Config(ak="app-key", sk="app-secret"))


def test_a_missing_iam_key_is_refused_by_name_before_anything_is_sent() -> None:
    require_iam_keys(Config(access_key="AK", secret_key="SK"))
    with pytest.raises(MissingConsoleKeysError) as only_bearer:
        require_iam_keys(Config(bearer_token="bce-v3/ALTAK-secretpart/zzz", access_key="AK"), "data sets")
    text = str(only_bearer.value)
    assert text.startswith("data sets calls the Qianfan console")
    assert "; QIANFAN_SECRET_KEY is not set" in text and "QIANFAN_SECRET_KEY are not" not in text
    assert "v2 API key that is set signs inference calls only" in text and "secretpart" not in text
    with pytest.raises(MissingConsoleKeysError, match="QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY are not set"):
        require_iam_keys(Config())


class Color(enum.Enum):
    RED = "red"


def test_a_builders_arguments_are_checked_naming_the_field() -> None:
    assert require(" x ", "name") == " x " and require_id(0, "task_id") == 0 and member("red", Color, "c") is Color.RED
    for call, field, message in [(lambda: require("  ", "name"), "name", "is required"),
                                 (lambda: require(True, "size", int), "size", "must be int, got bool"),
                                 (lambda: require_id(-1, "task_id"), "task_id", "must not be negative"),
                                 (lambda: member("blue", Color, "color"), "color", "must be one of ['red']"),
                                 (lambda: paged(1, "20"), "page_size", "must be int, got str")]:
        with pytest.raises(ValidationError) as caught:
            call()
        assert caught.value.field == field and message in str(caught.value)


def test_a_calls_body_leaves_out_nulls_and_config_overrides() -> None:
    assert paged(2, 10, name="", tag="a") == {"pageNo": 2, "pageSize": 10, "tag": "a"}
    assert compact({"a": 0, "b": None, "c": ""}) == {"a": 0, "c": ""}
    assert body_fields({"ak": "k", "sk": "s", "base_url": "u", "description": "d"}) == {"description": "d"}

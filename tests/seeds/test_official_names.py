"""The official SDK's spellings work on qfnb: enum members, exception names, top-level
setters, positional arguments, lenient config models, ``Service(service_type=None)``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

import qfnb
from qfnb._core.config import Config
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_server", "make_config"]

HI = [{"role": "user", "content": "你好"}]


def test_enum_members_as_the_official_sdk_spells_them() -> None:
    from qfnb.model.consts import ServiceType as ModelServiceType
    from qfnb.resources.console.consts import ServiceStatus, TrainMode, TrainParameterScale
    from qfnb.trainer.consts import ServiceType

    assert ServiceStatus.Serving == "Serving" and ServiceStatus.SERVING is ServiceStatus.Serving
    assert [m.name for m in ServiceStatus] == ["Done", "New", "Deploying", "Failed", "Stopped", "Serving"]
    assert TrainParameterScale.LoRA == "LoRA" and TrainParameterScale.LORA is TrainParameterScale.LoRA
    assert TrainParameterScale.FullFineTuning == "FullFineTuning"
    assert TrainMode.PostPretrain == "PostPretrain" and TrainMode.POST_PRETRAIN is TrainMode.PostPretrain
    assert ServiceType.Text2Image == "Text2Image" and ModelServiceType.Text2Image == "Text2Image"
    assert qfnb.QfRole.User == "user" and qfnb.Role is qfnb.QfRole and qfnb.QfRole.USER is qfnb.QfRole.User


def test_messages_take_official_roles() -> None:
    msgs = qfnb.QfMessages()
    msgs.append("hi", role=qfnb.QfRole.User)
    msgs.append("hello", role=qfnb.QfRole.Assistant)
    assert msgs.to_list() == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert type(msgs.to_list()[0]["role"]) is str  # plain strings on the wire


def test_exception_tree_has_the_official_names() -> None:
    from qfnb import errors

    for name in ("InternalError", "RequestTimeoutError", "ArgumentNotFoundError", "QianfanRequestError",
                 "BearerTokenExpiredError", "AccessTokenExpiredError", "InvalidArgumentError", "AuthError",
                 "APIError", "RequestError", "NotImplmentError", "FileSizeOverflow"):
        assert issubclass(getattr(errors, name), errors.QianfanError), name
    assert errors.QianfanError is errors.QfnbError
    with pytest.raises(errors.QianfanError):
        raise errors.InvalidArgumentError(336003, "bad")
    assert issubclass(errors.BearerTokenExpiredError, errors.AccessTokenExpiredError)


def test_top_level_names_and_setters(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QfRole", "QfMessages", "Role", "Response", "Messages", "QfResponse", "AK", "SK",
                 "AccessKey", "SecretKey", "AccessToken", "get_config", "enable_log", "disable_log"):
        assert hasattr(qfnb, name), name
    assert qfnb.Response is qfnb.QfResponse
    for var in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    qfnb.AK("ak-123")
    qfnb.SK("sk-456")
    qfnb.AccessKey("acc-789")
    qfnb.SecretKey("sec-000")
    cfg = qfnb.get_config()
    assert (cfg.ak, cfg.sk, cfg.access_key, cfg.secret_key) == ("ak-123", "sk-456", "acc-789", "sec-000")
    assert "sk-456" not in repr(cfg) and "sec-000" not in repr(cfg)
    with pytest.raises(ValueError, match="QIANFAN_AK"):
        qfnb.AK("")
    qfnb.disable_log()
    assert logging.getLogger("qfnb").level == logging.CRITICAL
    qfnb.enable_log(logging.DEBUG)
    assert logging.getLogger("qfnb").level == logging.DEBUG
    logging.getLogger("qfnb").setLevel(logging.NOTSET)


def test_positional_arguments_as_the_official_sdk(fake: FakeQianfan,
                                                  make_config: Callable[..., Config]) -> None:
    cfg = make_config("oauth")
    assert qfnb.Completion(config=cfg).do("你好").result.startswith("echo[")
    assert qfnb.ChatCompletion(config=cfg).do(HI, "ERNIE-Bot").result.startswith("echo[completions]")
    assert qfnb.Embedding(config=cfg).do(["a", "b"])["data"]
    with pytest.raises(TypeError, match="multiple values for argument 'prompt'"):
        qfnb.Completion(config=cfg).do("a", prompt="b")
    assert qfnb.Completion(config=cfg).do("a", None, None, False, 1).result  # retry_count, 5th as documented
    with pytest.raises(TypeError, match="positional arguments but 10 were given"):
        qfnb.Completion(config=cfg).do("a", None, None, False, 1, 60, None, 0, "extra")


def test_configs_accept_none_and_ignore_unknown_fields(caplog: pytest.LogCaptureFixture) -> None:
    from qfnb.model import Service
    from qfnb.resources.console.consts import DeployPoolType
    from qfnb.trainer import DeployConfig, TrainConfig
    from qfnb.trainer.consts import ServiceType

    with caplog.at_level(logging.WARNING):
        tc = TrainConfig(epoch=1, learning_rate=None, peft_type=None, trainset_rate=None, extras=None,
                         dataset_bos_path="bos:/x")
    assert tc.peft_type == "LoRA" and tc.trainset_rate == 20 and tc.extras == {}
    assert "dataset_bos_path" in caplog.text
    dc = DeployConfig(name="s", replicas=1, pool_type=DeployPoolType.PrivateResource, service_type=ServiceType.Chat,
                      months=2, hours=None, qps=None)
    assert dc.months == 2 and dc.hours == 1
    with pytest.raises(qfnb.errors.ValidationError, match="months"):
        DeployConfig(months=0)
    assert Service(id=1, service_type=None).service_type == ServiceType.Chat


def test_evaluator_module_path() -> None:
    from qfnb.evaluation import QianfanRuleEvaluator as A
    from qfnb.evaluation.evaluator import QianfanRuleEvaluator

    assert QianfanRuleEvaluator is A


@pytest.mark.parametrize("value", ["...", "…", "xxx", "your_ak", "<AK>", "YOUR-SECRET-KEY"])
def test_doc_placeholder_credentials_fail_before_sending(value: str) -> None:
    from qfnb._core.config import resolve_config

    with pytest.raises(qfnb.errors.ValidationError, match="placeholder from the docs"):
        resolve_config(None, access_key=value, secret_key="s3cr3tValue")


def test_real_looking_credentials_pass_the_placeholder_check() -> None:
    from qfnb._core.config import resolve_config

    cfg = resolve_config(None, ak="a1B2c3D4e5F6g7H8", sk="x1y2z3Xx9", access_key="ALTAKyourx12")
    assert cfg.ak == "a1B2c3D4e5F6g7H8"

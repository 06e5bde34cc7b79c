"""Pure parts of the core: config, error mapping, retry decisions, rate-limit arithmetic."""

from __future__ import annotations

import logging
import pickle
from types import SimpleNamespace
from typing import Any

import pytest

from qfnb._core import config as config_mod
from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import (
    AccessTokenExpiredError,
    APIError,
    ConnectionError,
    InvalidArgumentError,
    RateLimitError,
    RequestError,
    ServerOverloadedError,
    StreamError,
    ValidationError,
    api_error,
)
from qfnb._core.http.ratelimit import RateLimiter, estimate_tokens
from qfnb._core.http.retry import RetryPolicy, parse_retry_after, retry_delay
from qfnb._core.http.wire import error_from_body, error_from_http
from qfnb.protocol import ProtocolError

ENV = {"QIANFAN_AK": "ak-from-env-123456", "QIANFAN_SK": "sk-from-env-SECRET", "QIANFAN_QPS_LIMIT": "5",
       "QIANFAN_LLM_API_RETRY_ERR_CODES": "[18, 336100]", "QIANFAN_SSL_VERIFICATION_ENABLED": "false"}


def test_from_env_reads_official_names_and_kwargs_win() -> None:
    cfg = Config.from_env(ENV)
    assert cfg.ak == "ak-from-env-123456" and cfg.qps_limit == 5.0
    assert cfg.llm_api_retry_err_codes == frozenset({18, 336100})
    assert cfg.ssl_verification_enabled is False
    cfg2 = Config.from_env(ENV, ak="explicit", query_per_second=2, access_key="AK", secret_key="SK")
    assert (cfg2.ak, cfg2.qps_limit, cfg2.access_key) == ("explicit", 2, "AK")
    with pytest.raises(TypeError, match="bogus"):
        Config.from_env({}, bogus=1)
    with pytest.raises(ValueError, match="QIANFAN_QPS_LIMIT"):
        Config.from_env({"QIANFAN_QPS_LIMIT": "fast"})


def test_config_is_frozen_masked_and_not_picklable() -> None:
    cfg = Config.from_env(ENV, secret_key="iam-SECRET-value", bearer_token="bce-v3/ALTAK-x/TOPSECRET")
    text = repr(cfg) + str(cfg)
    for secret in ("sk-from-env-SECRET", "iam-SECRET-value", "TOPSECRET", "ak-from-env-123456"):
        assert secret not in text
    assert "ak-f****" in text
    with pytest.raises(AttributeError):
        cfg.ak = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(cfg)


def test_resolve_config_uses_embedded_platform_when_unconfigured(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Any] = []
    platform = SimpleNamespace(base_url="http://127.0.0.1:9", api_key="a", secret_key="b", access_key="c",
                               iam_secret_key="d", default_models={"chat": "Qwen2.5-Coder-0.5B-Instruct"})
    monkeypatch.setattr(config_mod, "_default_backend", lambda: calls.append(1) or platform)
    monkeypatch.setattr(config_mod, "_NOTICE_SHOWN", False)
    with caplog.at_level(logging.INFO, logger="qfnb"):
        cfg = resolve_config(Config.from_env({}))
        resolve_config(Config.from_env({}))
    assert cfg.base_url == cfg.console_api_base_url == "http://127.0.0.1:9"
    assert cfg.bos_endpoint == "http://127.0.0.1:9/bos" and cfg.embedded
    assert cfg.default_models["chat"] == "Qwen2.5-Coder-0.5B-Instruct"
    assert cfg.train_status_polling_interval == cfg.evaluation_online_polling_interval == 1.0
    # an interval the user chose is kept
    chosen = resolve_config(Config.from_env({"QIANFAN_TRAIN_STATUS_POLLING_INTERVAL": "0.1"}),
                            deploy_status_polling_interval=5)
    assert chosen.train_status_polling_interval == 0.1 and chosen.deploy_status_polling_interval == 5
    assert chosen.model_publish_status_polling_interval == 1.0
    assert len(calls) == 3 and sum("embedded local platform" in r.message for r in caplog.records) == 1
    # configured: no launcher
    assert resolve_config(Config.from_env(ENV)).ak == "ak-from-env-123456" and len(calls) == 3


@pytest.mark.parametrize(("code", "cls"), [(110, AccessTokenExpiredError), (111, AccessTokenExpiredError),
                                           (18, RateLimitError), (336501, RateLimitError),
                                           (336100, ServerOverloadedError), (2, ServerOverloadedError),
                                           (336003, InvalidArgumentError), (999, APIError)])
def test_error_code_mapping(code: int, cls: type[APIError]) -> None:
    err = api_error(code, "msg", "rid-1")
    assert type(err) is cls and err.error_code == code and "rid-1" in str(err)
    assert pickle.loads(pickle.dumps(err)).error_code == code


def test_error_bodies() -> None:
    assert error_from_body({"result": "ok"}) is None
    assert isinstance(error_from_body({"error_code": 336501, "error_msg": "rpm"}), RateLimitError)
    v2 = error_from_body({"error": {"code": "rate_limit_exceeded", "message": "slow down"}, "id": "as-1"}, 429)
    assert isinstance(v2, RateLimitError) and v2.request_id == "as-1"
    console = error_from_http(400, {"requestId": "r", "code": "InvalidParameter", "message": "bad taskId"}, {})
    assert isinstance(console, APIError) and console.error_code == "InvalidParameter" and console.status_code == 400
    raw = error_from_http(502, None, {"x-bce-error-code": "Gateway"}, "<html>")
    assert isinstance(raw, RequestError) and raw.status_code == 502 and "Gateway" in str(raw)


def test_validation_error_is_value_and_protocol_error() -> None:
    err = ValidationError("messages[0].role", "bad")
    assert isinstance(err, ValueError) and isinstance(err, ProtocolError) and err.field == "messages[0].role"


POLICY = RetryPolicy(attempts=3, backoff_factor=1.0, jitter=1.0, max_wait=5.0)


@pytest.mark.parametrize(("exc", "retry"), [
    (api_error(336100, "busy"), True), (api_error(18, "qps"), True), (api_error(336003, "bad"), False),
    (api_error(110, "token"), False), (RequestError("x", status_code=429), True),
    (RequestError("x", status_code=503), True), (RequestError("x", status_code=400), False),
    (RequestError("bad json", status_code=200), False), (ConnectionError("reset"), True),
    (StreamError("cut"), False), (ValueError("x"), False),
    (api_error(1, "internal", status_code=500), True),
])
def test_retry_decision(exc: BaseException, retry: bool) -> None:
    delay = retry_delay(exc, 1, POLICY, rand=lambda: 0.5)
    assert (delay is not None) is retry
    if retry:
        assert delay == 1.5


def test_retry_backoff_cap_attempts_and_retry_after() -> None:
    exc = api_error(336100, "busy")
    assert retry_delay(exc, 2, POLICY, rand=lambda: 0.0) == 2.0
    assert retry_delay(exc, 3, POLICY) is None  # attempts exhausted
    big = RetryPolicy(attempts=10, backoff_factor=1.0, jitter=0.0, max_wait=5.0)
    assert retry_delay(exc, 8, big) == 5.0
    assert retry_delay(RequestError("x", status_code=429), 1, POLICY, retry_after="7", rand=lambda: 0) == 7.0
    assert retry_delay(RequestError("x", status_code=429), 1, POLICY, retry_after="3600") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    assert POLICY.with_options(retry_count=1, retry_err_codes={7}).error_codes == frozenset({7})


def test_rate_limiter_spacing_with_fake_clock() -> None:
    now = [100.0]
    lim = RateLimiter(qps=4, clock=lambda: now[0])
    waits = [lim.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    now[0] += 10
    assert lim.reserve() == 0.0
    rpm = RateLimiter(rpm=120, clock=lambda: now[0])
    assert [rpm.reserve() for _ in range(3)] == pytest.approx([0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="mutually exclusive"):
        RateLimiter(qps=1, rpm=1)


def test_limiter_from_server_advertised_limits() -> None:
    now = [0.0]
    both = RateLimiter.from_server(rpm=60, tpm=1000, clock=lambda: now[0])  # used at 90%
    assert both is not None and both.enabled and both.limits_tokens
    assert [both.reserve() for _ in range(3)] == pytest.approx([0.0, 60 / 54, 120 / 54])
    tokens = RateLimiter.from_server(rpm=None, tpm=1000, clock=lambda: now[0])  # 900 tokens/min = 15/s
    assert tokens is not None and tokens.reserve(900) == 0.0 and tokens.reserve(90) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="TPM"):
        tokens.reserve(901)
    assert RateLimiter.from_server(rpm=None, tpm=None) is None and RateLimiter.from_server(0, 0) is None


def test_tpm_limiter() -> None:
    now = [0.0]
    lim = RateLimiter(tpm=600, clock=lambda: now[0])  # 10 tokens / s
    assert lim.reserve(500) == 0.0
    assert lim.reserve(200) == pytest.approx(10.0)  # 100 short -> 10 s
    lim.settle(200, 100)  # over-estimated by 100: credited back
    assert lim.reserve(0) == 0.0
    with pytest.raises(ValueError, match="TPM"):
        lim.reserve(601)
    assert estimate_tokens("你好 world foo") == 3

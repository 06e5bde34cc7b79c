"""Batches that lose nothing: transient failures are re-queued within a time budget, a quota
slows the batch down (AIMD) instead of failing it, permanent errors fail at once, and a single
``do()`` keeps the official retry semantics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qfnb import ChatCompletion, QfResponse
from qfnb._core.config import Config
from qfnb._core.errors import APIError, RequestError, api_error
from qfnb._core.http.retry import AdaptiveLimit, RetryPolicy, batch_verdict
from qfnb.errors import InvalidArgumentError
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_server", "make_config"]

MakeConfig = Callable[..., Config]
STORM = ("429", "500", "503", "code:18", "code:336100", "drop")


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"q{i}"}] for i in range(n)]


def _check_all_answered(results: object, n: int) -> None:
    assert [r["result"] if isinstance(r, QfResponse) else repr(r) for r in results] == [  # type: ignore[attr-defined]
        f"echo[ernie-lite-8k]: q{i}" for i in range(n)]


async def test_a_fault_storm_loses_nothing(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fault_rate(0.2, STORM, seed=7, retry_after="0")
    chat = ChatCompletion(config=make_config("oauth", llm_api_retry_backoff_factor=0))
    results = await chat.abatch_do(_prompts(300), worker_num=20)
    _check_all_answered(results, 300)  # 0 lost, each answer the one of its own input
    faults = len(fake.calls("/chat/")) - 300
    assert faults > 30  # the storm really hit


def test_batch_do_reports_retries_and_keeps_every_result(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fault_rate(0.2, STORM, seed=3, retry_after="0")
    future = ChatCompletion(config=make_config("oauth")).batch_do(_prompts(200), worker_num=16)
    _check_all_answered(future.results(), 200)
    assert future.stats.retried == len(fake.calls("/chat/")) - 200 > 0


def test_permanent_errors_fail_at_once(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fail_next(4, "code:336003", path="/chat/")
    future = ChatCompletion(config=make_config("oauth")).batch_do(_prompts(40), worker_num=4)
    failed = [r for r in future.results() if isinstance(r, Exception)]
    assert len(failed) == 4 and all(isinstance(e, InvalidArgumentError) for e in failed)
    assert len(fake.calls("/chat/")) == 40 and future.stats.retried == 0


async def test_a_quota_slows_the_batch_instead_of_failing_it(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.admit_per_second(40)
    chat = ChatCompletion(config=make_config("oauth"))
    future = chat.batch_do(_prompts(120), worker_num=32)
    _check_all_answered(future.results(), 120)
    assert future.stats.lowest_concurrency < 32 and future.stats.retried > 0


def test_time_budget_bounds_the_retries(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fault_rate(1.0, ("503",), retry_after="0")
    future = ChatCompletion(config=make_config("oauth")).batch_do(_prompts(3), worker_num=3, retry_budget=0.5)
    assert all(isinstance(r, APIError) for r in future.results())


def test_single_do_keeps_the_count_based_retries(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fail_next(5, "500", path="/chat/")
    chat = ChatCompletion(config=make_config("oauth", llm_api_retry_count=3, llm_api_retry_backoff_factor=0))
    with pytest.raises(APIError, match="fake HTTP 500"):
        chat.do(messages=_prompts(1)[0])
    assert len(fake.calls("/chat/")) == 3


def test_batch_verdict_honours_retry_after_and_names_throttling() -> None:
    policy = RetryPolicy()
    throttled = RequestError("too many", status_code=429, headers={"retry-after": "7"})
    verdict = batch_verdict(throttled, policy, 1)
    assert verdict.retry and verdict.throttled and verdict.wait == 7
    qps = batch_verdict(api_error(18, "qps"), policy, 3, rand=lambda: 0.5)
    assert qps.retry and qps.throttled and qps.wait == pytest.approx(1.0)  # quotas count per second
    assert not batch_verdict(api_error(336003, "bad"), policy, 1).retry
    server = batch_verdict(api_error(336100, "busy"), policy, 3, rand=lambda: 0.5)
    assert server.retry and not server.throttled and server.wait == pytest.approx(0.2)


def test_adaptive_limit_cuts_on_a_quota_not_on_a_passing_fault() -> None:
    limit = AdaptiveLimit(32)
    for i in range(200):  # one throttle in 20 answers: a passing fault, not a quota
        if i % 20 == 0:
            assert not limit.on_throttle(limit.epoch)
        else:
            limit.on_success(limit.epoch)
    assert limit.current == 32
    epoch = limit.epoch
    cuts = [limit.on_throttle(epoch) for _ in range(12)]  # everything throttled: a quota
    assert cuts.count(True) == 1 and limit.current == 16
    assert not limit.on_throttle(epoch)  # answers to calls from before the cut do not cut again
    while not limit.on_throttle(limit.epoch):
        pass
    assert limit.current == 8
    for _ in range(8 + 9 + 10):
        limit.on_success()
    assert limit.current == 10  # about one slot per round of successes (8 -> 10.9 after 27)
    for _ in range(10_000):
        limit.on_success()
    assert limit.current == 32

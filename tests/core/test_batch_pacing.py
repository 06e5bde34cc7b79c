"""The pure pacing decisions of a batch: how long a failed item waits, given how the batch is
going (share of recent transient failures, whether the concurrency was cut)."""

from __future__ import annotations

import pytest

from qfnb._core.errors import ConnectionError, RequestError, api_error
from qfnb._core.http.retry import FREE_RETRIES, AdaptiveLimit, BatchHealth, RecentFailures, RetryPolicy, batch_verdict

HEALTHY = BatchHealth(failing=0.1, throttling=False)
SICK = BatchHealth(failing=0.8, throttling=False)
QUOTA = BatchHealth(failing=0.0, throttling=True)


@pytest.mark.parametrize("exc", [RequestError("x", status_code=500), RequestError("x", status_code=503),
                                 api_error(336100, "busy"), ConnectionError("dropped"),
                                 api_error(18, "qps"), RequestError("x", status_code=429)])
def test_a_passing_fault_in_a_healthy_batch_waits_nothing(exc: BaseException) -> None:
    waits = [batch_verdict(exc, RetryPolicy(), attempt, HEALTHY, rand=lambda: 0.5).wait for attempt in range(1, 8)]
    # four failures in a row go back at once; an input that keeps failing then backs off
    assert waits[:FREE_RETRIES] == [0.0] * FREE_RETRIES == [0.0] * 4
    assert waits[4:] == pytest.approx([0.05, 0.1, 0.2])


def test_a_sick_server_gets_a_growing_backoff() -> None:
    waits = [batch_verdict(api_error(336100, "busy"), RetryPolicy(), a, SICK, rand=lambda: 0.5).wait
             for a in (1, 2, 3, 12)]
    assert waits == pytest.approx([0.05, 0.1, 0.2, 5.0])


def test_throttling_under_a_cut_waits_about_a_second_and_retry_after_wins() -> None:
    qps = batch_verdict(api_error(18, "qps"), RetryPolicy(), 1, QUOTA, rand=lambda: 0.5)
    assert qps.retry and qps.throttled and qps.wait == pytest.approx(1.0)
    told = RequestError("x", status_code=429, headers={"retry-after": "0"})
    assert batch_verdict(told, RetryPolicy(), 1, QUOTA).wait == 0.0  # the server said "now"
    server = batch_verdict(api_error(336100, "busy"), RetryPolicy(), 1, QUOTA)
    assert not server.throttled and server.wait == 0.0  # a cut is about throttling, not 5xx
    later = RequestError("x", status_code=503, headers={"retry-after": "3"})
    assert batch_verdict(later, RetryPolicy(), 1, HEALTHY).wait == 3.0
    assert not batch_verdict(api_error(336003, "bad"), RetryPolicy(), 1, HEALTHY).retry


def test_recent_failures_share_over_a_window_with_a_floor() -> None:
    recent = RecentFailures(window=20, minimum=10)
    recent.note(True)
    assert recent.share == pytest.approx(0.1)  # one failure is not "all calls fail"
    for _ in range(30):
        recent.note(True)
    assert recent.share == 1.0
    for _ in range(10):
        recent.note(False)
    assert recent.share == pytest.approx(0.5)


def test_throttling_is_the_rule_from_a_cut_until_the_limit_grows_back() -> None:
    limit = AdaptiveLimit(8)
    assert not limit.throttling
    while not limit.on_throttle(limit.epoch):
        pass
    assert limit.throttling and limit.current == 4
    for _ in range(100):
        limit.on_success()
    assert not limit.throttling and limit.current == 8


def test_the_cut_comes_at_the_threshold_share_of_throttled_answers() -> None:
    """30% of the recent answers (at least the last 20) throttled: 5 in 20 is a passing fault,
    the 6th is a quota; answers to calls started before the cut never cut again."""
    limit = AdaptiveLimit(8, threshold=0.3, window=20)
    for _ in range(14):
        limit.on_success(limit.epoch)
    assert [limit.on_throttle(limit.epoch) for _ in range(5)] == [False] * 5 and limit.current == 8
    before = limit.epoch
    assert limit.on_throttle(before) and limit.current == 4  # 6 of 20
    assert not any(limit.on_throttle(before) for _ in range(20)) and limit.current == 4
    lone = AdaptiveLimit(8, threshold=0.01, window=1)
    assert not lone.on_throttle(lone.epoch)  # one throttled answer alone never cuts
    assert lone.on_throttle(lone.epoch) and lone.current == 4

"""``Dataset.stress_test`` / ``multi_stress_test`` against the local platform's app (engine doubles
answering word by word): what is counted, the rounds, the thresholds, the checks before sending."""

from __future__ import annotations

import math

import pytest

from qfnb._core.record import cache
from qfnb.dataset import Dataset
from qfnb.dataset.llm.stress import StressTestResult, parse_runtime
from qfnb.errors import ValidationError
from tests.fakes.local_platform import ServedPlatform

PROMPTS = [f"what is {i} plus {i}" for i in range(6)]


@pytest.fixture
def ds(local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> Dataset:
    local_platform.set_env(monkeypatch)
    return Dataset.create_from_pyobj([{"prompt": p} for p in PROMPTS])


def test_one_round_times_every_request(ds: Dataset, local_platform: ServedPlatform) -> None:
    result = ds.stress_test(users=2, model="Tiny-Chat", hyperparameters={"temperature": 0.5})
    assert isinstance(result, StressTestResult) and len(result.rounds) == 1
    (row,) = result.to_pandas().to_dict(orient="records")
    assert (row["users"], row["requests"], row["errors"], row["success_rate"]) == (2, 6, 0, 1.0)
    samples = result.rounds[0].to_pandas()
    assert list(samples.columns) == ["start", "ttft", "latency", "output_tokens", "error"]
    assert (samples["ttft"] <= samples["latency"]).all() and (samples["ttft"] > 0).all()
    assert samples["output_tokens"].tolist() == [6] * 6  # "tiny-chat: what is i plus i", word by word
    # OTPS as the official report defines it: mean output tokens / mean latency (one stream's rate);
    # total_otps: the round's tokens over its wall time (both users' streams together)
    assert row["otps"] == pytest.approx(36 / samples["latency"].sum())
    assert row["total_otps"] == pytest.approx(36 / row["duration_s"])
    assert row["qps"] == pytest.approx(6 / row["duration_s"])
    assert row["latency_p50"] <= row["latency_p90"] <= row["latency_p99"]
    calls = local_platform.registry.engines["tiny-chat"].calls
    assert len(calls) == 6 and all(c["sampling"].temperature == 0.5 for c in calls)


def test_rounds_grow_by_interval_and_a_threshold_stops_them(ds: Dataset) -> None:
    result = ds.multi_stress_test(origin_users=1, rounds=3, interval=2, model="Tiny-Chat")
    assert result.to_pandas()["users"].tolist() == [1, 3, 5] and result.stopped is None
    stopped = ds.multi_stress_test(origin_users=1, rounds=3, interval=1, model="Tiny-Chat",
                                   round_latency_threshold=0.0)
    assert len(stopped.rounds) == 1 and stopped.stopped is not None and "mean latency" in stopped.stopped


def test_failures_are_counted_not_raised(local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    local_platform.set_env(monkeypatch)
    data = Dataset.create_from_pyobj([{"prompt": "fine"}, {"prompt": "TOO LONG"}, {"prompt": "also fine"}])
    result = data.multi_stress_test(origin_users=2, model="Tiny-Chat", success_rate_threshold=0.9)
    row = result.to_pandas().iloc[0]
    assert (row["requests"], row["errors"]) == (3, 1) and math.isclose(row["success_rate"], 2 / 3)
    assert result.stopped is not None and "success rate 0.667 < 0.9" in result.stopped
    errors = result.rounds[0].to_pandas()["error"].dropna().tolist()
    assert len(errors) == 1 and "context" in errors[0]


def test_completions_are_timed_too(ds: Dataset) -> None:
    result = ds.stress_test(users=3, model="Tiny-Chat", model_type="Completions")
    assert result.to_pandas()["errors"].tolist() == [0]
    assert result.rounds[0].to_pandas()["output_tokens"].tolist() == [6] * 6


def test_the_response_cache_is_bypassed(ds: Dataset, local_platform: ServedPlatform) -> None:
    previous = cache.set_process_mode("on")
    try:
        for _ in range(2):
            ds.stress_test(users=3, model="Tiny-Chat")
    finally:
        cache.set_process_mode(previous)
    assert len(local_platform.registry.engines["tiny-chat"].calls) == 12  # every request reached the engine


def test_bad_arguments_are_refused_before_anything_is_sent(ds: Dataset, local_platform: ServedPlatform) -> None:
    with pytest.raises(ValidationError, match="users"):
        ds.stress_test(model="Tiny-Chat")
    with pytest.raises(ValidationError, match="not both"):
        ds.stress_test(users=1, model="Tiny-Chat", endpoint="tiny-chat")
    with pytest.raises(ValidationError, match="model_type"):
        ds.stress_test(users=1, model_type="Embedding")
    with pytest.raises(ValidationError, match="runtime"):
        ds.stress_test(users=1, runtime="5 minutes")
    with pytest.raises(ValidationError, match="prompt_column"):
        ds.stress_test(users=1, prompt_column="question")
    assert local_platform.registry.engines == {}
    assert parse_runtime("1h30m") == 5400 and parse_runtime("20s") == 20 and parse_runtime(0) == 0


def test_the_notebook_shows_the_table_and_the_chart(ds: Dataset) -> None:
    from qfnb.notebook.data.stress import stress_html

    text = stress_html(ds.multi_stress_test(origin_users=1, rounds=2, interval=1, model="Tiny-Chat"))
    assert text.count("<tr>") == 3 and "TTFT p50 s" in text and 'src="data:image/png;base64,' in text

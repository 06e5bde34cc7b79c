"""``qfnb.forecast``: input tokens from the platform's tokenizer, output tokens and their range from
the ledger's recorded answers (or a pilot), ¥ at list price, ETA from recorded runs, a budget that
refuses on the upper bound, and a finished run against its forecast (fake cloud, ledger rows
written here)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import pytest

import qfnb
from qfnb._core.config import Config
from qfnb._core.record.budget import BudgetExceeded, budget
from qfnb._core.record.ledger import SESSION, UsageRow, default_ledger
from qfnb._core.record.prices import prices
from qfnb.errors import ValidationError
from qfnb.resources.forecast_result import Forecast
from qfnb.resources.forecasting import forecast
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config  # noqa: F401
from tests.fakes.inference_extra import install

MODEL = "ERNIE-4.0-8K"
PROMPTS = ["What is the capital of France?", "Name three colours.", "写一首短诗。", "What is 12*7?"]
#: the recorded answers of MODEL: prompts of 20-40 tokens, answers of these lengths
ANSWERS = [40, 52, 61, 47, 55, 38, 66, 50]


@pytest.fixture
def cfg(fake: FakeQianfan, make_config: Callable[..., Config], own_record_dir: None) -> Config:  # noqa: F811
    install(fake)
    return make_config("both")


def _record(rows: list[UsageRow]) -> None:
    ledger = default_ledger()
    for row in rows:
        ledger.record(row)
    ledger.flush()


def _history(now: float) -> None:
    """MODEL's answers to similar prompts (single calls) and three earlier runs (jobs) of it."""
    _record([UsageRow(api="chat", model=MODEL, platform="cloud", prompt_tokens=30, completion_tokens=c,
                      total_tokens=30 + c, latency_s=1.0, ts=now - 1000 + i, session="old", cell=1)
             for i, c in enumerate(ANSWERS)])
    # runs of 4 calls at 20 output tokens/s (with 0.01 s an input token), each call alone in its stretch
    for run, start in enumerate((now - 900, now - 800, now - 700)):
        out, inp = 200 * (run + 1), (100, 400, 160)[run]
        t = start
        for _ in range(4):
            seconds = (out / 4) / 20 + (inp / 4) * 0.01
            t += seconds
            _record([UsageRow(api="chat", model=MODEL, platform="cloud", prompt_tokens=inp // 4,
                              completion_tokens=out // 4, total_tokens=0, latency_s=seconds, ts=t, session="old",
                              job=f"evaluation {run}")])


def test_input_tokens_come_from_the_platforms_tokenizer_and_are_not_recorded(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    since = time.time()
    fc = forecast(PROMPTS, model=MODEL, system="Be brief.", max_tokens=100, config=cfg)
    # the fake's tokenizer counts characters of the turns' text (system turn included)
    assert fc.input_tokens == sum(len("Be brief.\n" + p) for p in PROMPTS)
    assert "platform's tokenizer" in fc.input_source
    bodies = [c.json for c in fake.calls("/tokenizer/")]
    assert {"prompt": "Be brief.\nName three colours.", "model": MODEL} in bodies
    assert default_ledger().rows(since=since) == []  # counting is no call: no ledger row, no budget spent
    assert qfnb.forecast is forecast


def test_without_records_the_upper_bound_is_every_answer_at_its_cap(cfg: Config) -> None:
    fc = forecast(PROMPTS, model=MODEL, max_tokens=100, n=2, config=cfg)
    assert fc.calls == 8 and fc.output_expected is None and fc.total_expected is None
    assert fc.output_high == 800 and fc.total_high == fc.input_tokens + 800
    assert fc.eta_s is None and "no recorded run" in fc.speed_source
    assert fc.yuan_high == pytest.approx(prices().cost(MODEL, fc.input_tokens, 800))
    assert "up to 800" in repr(fc) and "no record" in repr(fc)


def test_recorded_answers_give_the_expected_output_and_a_90_percent_range(cfg: Config) -> None:
    _history(time.time())
    fc = forecast(PROMPTS, model=MODEL, max_tokens=100, config=cfg)
    # similar prompts (within 2x of the median prompt): the 8 single calls (30 tokens) and the first
    # run's calls (25 tokens); the other runs' (100, 40 tokens) are further off
    similar = ANSWERS + [50] * 4
    mean, sd = statistics.fmean(similar), statistics.stdev(similar)
    assert fc.output_expected == round(4 * mean)
    spread = 1.6449 * math.sqrt(4 * sd**2 + 16 * sd**2 / len(similar))
    assert fc.output_low == max(0, round(4 * mean - spread)) and fc.output_high == math.ceil(4 * mean + spread)
    assert "12 recorded answers" in fc.output_source and "similar length" in fc.output_source
    assert fc.yuan_expected == pytest.approx(prices().cost(MODEL, fc.input_tokens, fc.output_expected))
    # the three runs' wall time fits 0.01 s an input token and 0.05 s an output token
    assert fc.eta_s == pytest.approx(fc.input_tokens * 0.01 + fc.output_expected * 0.05, rel=1e-6)
    assert "3 recorded runs" in fc.speed_source and "20.0 output tokens/s" in fc.speed_source


def test_a_pilot_and_the_cap_decide_the_output(cfg: Config) -> None:
    _history(time.time())
    fc = forecast(PROMPTS, model=MODEL, max_tokens=30, pilot=[10, 20, 90], config=cfg)
    assert "pilot's 3 answers" in fc.output_source
    assert fc.output_expected == round(4 * statistics.fmean([10, 20, 30]))  # 90 is capped at 30
    assert fc.output_high <= 4 * 30


def test_a_budget_refuses_on_the_forecasts_upper_bound(cfg: Config) -> None:
    fc = forecast(PROMPTS, model=MODEL, max_tokens=100, config=cfg)
    budget(tokens=fc.total_high)
    fc.check_budget()  # exactly what is left: allowed
    budget(tokens=fc.total_high - 1)
    with pytest.raises(BudgetExceeded) as err:
        fc.check_budget("this evaluation")
    text = str(err.value)
    assert f"up to {fc.total_high:,} tokens" in text and f"{fc.total_high - 1:,} of {fc.total_high - 1:,} left" in text
    assert "this evaluation" in text and "nothing was sent" in text
    budget(yuan=(fc.yuan_high or 0.0) / 2)
    with pytest.raises(BudgetExceeded, match="may cost up to ¥"):
        fc.check_budget()


def test_a_run_against_its_forecast(cfg: Config) -> None:
    _history(time.time())
    fc = forecast(PROMPTS, model=MODEL, max_tokens=100, config=cfg)
    since = time.time()
    _record([UsageRow(api="chat", model=MODEL, platform="cloud", prompt_tokens=fc.input_tokens // 4,
                      completion_tokens=50, total_tokens=0, latency_s=1.0, session=SESSION) for _ in range(3)]
            + [UsageRow(api="chat", model=MODEL, platform="cloud", prompt_tokens=10, completion_tokens=50,
                        total_tokens=60, cache_hit=True, session=SESSION),
               UsageRow(api="embeddings", model="Embedding-V1", platform="cloud", prompt_tokens=5,
                        session=SESSION)])
    check = fc.against(since=since, seconds=(fc.eta_s or 0.0) * 1.2)
    assert check.calls == 4 and check.replayed == 1  # the embedding call is no generation
    assert check.completion_tokens == 200 and check.prompt_tokens == 3 * (fc.input_tokens // 4) + 10
    assert check.eta_ratio == pytest.approx(1.2)
    assert check.tokens_ratio == pytest.approx(check.total_tokens / (fc.total_expected or 1))
    assert "1 replayed from the cache" in repr(check) and "of forecast" in check._repr_html_()


def test_bad_input_is_refused_before_anything_is_sent(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    for bad, field in (([], "prompts"), ([3], "prompts")):
        with pytest.raises(ValidationError, match=field):
            forecast(bad, model=MODEL, config=cfg)
    with pytest.raises(ValidationError, match="n"):
        forecast(PROMPTS, model=MODEL, n=0, config=cfg)
    with pytest.raises(ValidationError, match="max_tokens"):
        forecast(PROMPTS, model=MODEL, max_tokens=0, config=cfg)
    assert fake.calls("/tokenizer/") == []


def test_a_model_without_a_tokenizer_is_estimated_and_unpriced(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    fc = forecast(["hello world"], model="my-own-model", config=cfg)
    assert fc.input_tokens == 2 and "estimated" in fc.input_source and fake.calls("/tokenizer/") == []
    assert fc.yuan_high is None and "not in the price table" in fc.price_source
    assert "no list price" in repr(fc) and isinstance(fc, Forecast)
    assert "<table" in fc._repr_html_()


def test_a_batch_is_priced_at_the_batch_class_where_the_table_has_one(cfg: Config,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped table prices a chat batch at Files+Batch's 40% of the online price; a table
    without a batch class prices a batch at the online list price and says so."""
    online = forecast(PROMPTS, model=MODEL, max_tokens=10, config=cfg)
    shipped = forecast(PROMPTS, model=MODEL, max_tokens=10, batch=True, config=cfg)
    assert shipped.yuan_high == pytest.approx(online.yuan_high * 0.4)  # type: ignore[operator]
    table = prices()
    monkeypatch.setattr("qfnb.resources.forecasting.prices",
                        lambda: type(table)(table.date, table.source, table.per_tokens, table.cloud_equivalent,
                                            table.models))
    plain = forecast(PROMPTS, model=MODEL, max_tokens=10, batch=True, config=cfg)
    assert plain.yuan_high == pytest.approx(online.yuan_high)
    assert f"no batch price for {MODEL}: its online list price" in plain.price_source
    half = {k: (v[0] / 2, v[1] / 2) for k, v in table.models.items()}
    monkeypatch.setattr("qfnb.resources.forecasting.prices",
                        lambda: type(table)(table.date, table.source, table.per_tokens, table.cloud_equivalent,
                                            table.models, batch=half))
    priced = forecast(PROMPTS, model=MODEL, max_tokens=10, batch=True, config=cfg)
    assert priced.yuan_high == pytest.approx(online.yuan_high / 2)  # type: ignore[operator]
    assert priced.price_source.startswith(f"batch price of {table.date}: ¥")  # the unit price, stated


def test_a_tokenizer_that_cannot_count_gives_a_stated_estimate_not_an_error(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    fake.fail_next(50, "500", path="/tokenizer/")  # the platform's tokenizer fails, every try
    fc = forecast(PROMPTS, model=MODEL, max_tokens=100, config=cfg)
    assert fc.input_source.startswith("estimated by a text rule (the platform could not count them: ")
    assert fc.input_high == math.ceil(fc.input_tokens * 2) and fc.calls == len(PROMPTS)


def test_answers_the_response_cache_holds_are_no_calls(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    import dataclasses

    cached = dataclasses.replace(cfg, cache="on")
    qfnb.ChatCompletion(model=MODEL, config=cached).do([{"role": "user", "content": PROMPTS[0]}],
                                                       max_output_tokens=100, temperature=0.5)
    before = len(fake.calls("/chat/"))
    fc = forecast(PROMPTS, model=MODEL, max_tokens=100, params={"temperature": 0.5}, config=cached)
    assert len(fake.calls("/chat/")) == before  # looked up, never sent
    assert fc.calls == 3 and fc.known == 1 and "1 of 4 answers known (1 in the response cache)" in fc.known_source
    assert fc.title.endswith("1 of 4 answers known: 0 calls")
    other = forecast(PROMPTS, model=MODEL, max_tokens=100, params={"temperature": 0.9}, config=cached)
    assert other.known == 0 and other.calls == 4  # other sampling: another key, a call
    every = forecast(PROMPTS[:1], model=MODEL, max_tokens=100, params={"temperature": 0.5}, config=cached)
    assert (every.calls, every.input_tokens, every.output_high, every.eta_s) == (0, 0, 0, 0.0)


def test_the_eta_range_is_the_measured_spread_of_this_machines_runs() -> None:
    from qfnb.resources.forecasting import ASSUMED_SPREAD, spread_of

    rates = (0.0, 0.05)  # 20 output tokens/s
    exact = spread_of([(0, 100, 5.0)] * 4, rates, load=(1.0, 2))
    assert exact.low == pytest.approx(1.0) and exact.high == pytest.approx(1.0)  # no spread: zero width, truly
    varied = spread_of([(0, 100, w) for w in (4.0, 5.0, 6.5, 5.5, 4.5)], rates, load=(1.0, 2))
    assert varied.low < 0.8 and varied.high > 1.3 and varied.note.startswith("90 % of similar runs on this machine")
    busy = spread_of([(0, 100, w) for w in (4.0, 5.0, 6.5, 5.5, 4.5)], rates, load=(6.0, 2))
    assert busy.high == pytest.approx(varied.high * 3) and "load 6.0 on 2 cores now: the upper end ×3" in busy.note
    few = spread_of([(0, 100, 5.0)], rates, load=(0.5, 2))
    assert (few.low, few.high) == ASSUMED_SPREAD and "assumed" in few.note

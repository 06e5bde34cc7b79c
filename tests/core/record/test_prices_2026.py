"""The Qianfan of 2026: the dated v2 catalog, the v1 names' successors, the 2026 price table
(batch and cache-hit prices), user prices (by call and ``QFNB_PRICES``), and a ¥ budget that
refuses a model without a price before anything is sent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import qfnb
import qfnb.usage
from qfnb._core.record.budget import BudgetExceeded, UnpricedModel, budget
from qfnb._core.record.prices import PriceError, clear_prices, prices, worst_yuan
from qfnb.protocol.console.cloud_models import (
    CATALOG_DATE,
    KINDS,
    catalog,
    cloud_model,
    cloud_models,
    current_id,
    name_key,
    retirement,
    successor,
)
from qfnb.protocol.console.model_names import V2_DEFAULT_MODEL

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _no_user_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("QFNB_PRICES", raising=False)
    clear_prices()
    yield
    clear_prices()


def _seed_names() -> list[str]:
    catalog = resources.files("qfnb.protocol.wires.qianfan").joinpath("models.json")
    data = json.loads(catalog.read_text(encoding="utf-8"))
    return [name for api in data.values() for name in api["models"]]


def _chat_posts(fake: Any) -> int:
    return len([r for r in fake.calls("/chat/") if r.method == "POST"])


# --- the catalog ---------------------------------------------------------------------------------

def test_the_catalog_is_dated_and_every_figure_names_its_source() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", CATALOG_DATE) and CATALOG_DATE.startswith("2026")
    assert catalog()["not_found"], "what could not be found is said"
    for model in cloud_models():
        assert model.kind in KINDS and model.id == model.id.lower() and model.source
        if model.price is not None:
            assert model.price.source and model.price.as_of and model.price.input >= 0
        if model.kind != "chat":
            assert model.max_output_tokens is None


def test_lookups_are_case_insensitive_and_filter_by_kind() -> None:
    turbo = cloud_model("ERNIE-4.5-Turbo-128K")
    assert turbo is not None and turbo.id == "ernie-4.5-turbo-128k" and turbo.kind == "chat"
    assert turbo.price is not None and turbo.price.cache_hit == 0.0002
    assert cloud_model("no-such-model") is None
    assert {m.id for m in cloud_models("embeddings")} >= {"embedding-v1", "bge-large-zh", "bge-large-en", "tao-8k"}
    assert "bce-reranker-base" in {m.id for m in cloud_models("reranker")}
    assert {"irag-1.0", "flux.1-schnell"} <= {m.id for m in cloud_models("text2image")}
    assert {"ernie-5.0-thinking-latest", "ernie-4.5-turbo-128k", "ernie-x1-turbo-32k", "deepseek-v3.2",
            "qwen3-235b-a22b"} <= {m.id for m in cloud_models("chat")}
    with pytest.raises(ValueError, match="kind"):
        cloud_models("video")


def test_every_seed_name_has_a_successor_or_is_listed_as_having_none() -> None:
    none = {name_key(n) for n in catalog()["no_successor"]}
    for name in _seed_names():
        new = successor(name)
        assert (new is not None and cloud_model(new) is not None) or name_key(name) in none, name
        assert not (new is not None and name_key(name) in none), name


@pytest.mark.parametrize(("old", "new"), [
    ("ERNIE-Bot", "ernie-3.5-8k"), ("ERNIE-Bot-turbo", "ernie-lite-8k"), ("ERNIE-Bot-4", "ernie-4.0-8k"),
    ("ERNIE-Speed", "ernie-speed-8k"), ("ERNIE-Speed-128K", "ernie-speed-128k"), ("ERNIE-3.5-8K", "ernie-3.5-8k"),
    ("ERNIE-Lite-8K", "ernie-lite-8k"), ("ERNIE-4.0-8K", "ernie-4.0-8k"), ("Embedding-V1", "embedding-v1"),
    ("bge_large_zh", "bge-large-zh"), ("bce-reranker-base", "bce-reranker-base"),
    ("bce_reranker_base", "bce-reranker-base"), ("bce-reranker-base_v1", "bce-reranker-base"),
    ("Stable-Diffusion-XL", "irag-1.0"), ("ernie bot", "ernie-3.5-8k"), ("DeepSeek-V3.2", "deepseek-v3.2"),
])
def test_successors_answer_any_spelling(old: str, new: str) -> None:
    assert successor(old) == new
    assert successor(new) == new  # a v2 id is its own successor


def test_a_name_without_a_v2_equivalent_has_no_successor() -> None:
    assert successor("Llama-2-7B-Chat") is None and successor("never-heard-of-it") is None


# --- the 2026 prices -----------------------------------------------------------------------------

def test_v1_names_are_priced_through_their_successor_without_duplicate_rows() -> None:
    table = prices()
    assert table.date == CATALOG_DATE
    assert "ernie-bot" not in table.models and table.cost("ERNIE-Bot", 1000, 1000) == table.cost("ernie-3.5-8k",
                                                                                                 1000, 1000)
    assert table.cost("ERNIE-4.0-8K", 1000, 1000) == pytest.approx(0.03 + 0.09)
    assert table.cost("ERNIE-Speed-128K", 10_000, 10_000) == 0.0
    assert table.cost("qwen3-235b-a22b", 1000, 1000) is None  # not found: no price, not a guess


def test_batch_is_forty_percent_of_real_time_and_the_ledger_uses_it_for_batch_jobs() -> None:
    table = prices()
    online = table.cost("ernie-4.0-turbo-8k", 1000, 1000)
    assert online == pytest.approx(0.02 + 0.06)
    assert table.cost("ernie-4.0-turbo-8k", 1000, 1000, batch=True) == pytest.approx(0.4 * (0.02 + 0.06))
    assert table.batch_source("ERNIE-4.0-Turbo-8K") == f"batch price of {table.date}"
    for model in ("ernie-5.1", "ernie-4.5-turbo-128k", "deepseek-v4-pro", "deepseek-v3.2"):
        price = cloud_model(model).price  # type: ignore[union-attr]
        assert price is not None and price.batch == pytest.approx((0.4 * price.input, 0.4 * price.output))
        assert table.cost(model, 1000, 1000, batch=True) == pytest.approx(0.4 * table.cost(model, 1000, 1000))
    assert table.cost("embedding-v1", 1000, 0, batch=True) == table.cost("embedding-v1", 1000, 0)  # chat only


def test_cached_prompt_tokens_cost_the_cache_hit_price_where_known() -> None:
    table = prices()
    assert table.cost("ernie-4.5-turbo-32k", 1000, 0, cached_tokens=400) == pytest.approx(
        (600 * 0.0008 + 400 * 0.0002) / 1000)
    assert table.cost("deepseek-v4-flash", 1000, 1000, cached_tokens=1000) == pytest.approx(0.0002 + 0.002)
    # batch jobs pay the batch price: no cache-hit price on top
    assert table.cost("ernie-4.5-turbo-32k", 1000, 0, batch=True, cached_tokens=400) == pytest.approx(0.4 * 0.0008)
    # no published cache-hit price: every prompt token at the input price
    assert table.cost("ernie-3.5-8k", 1000, 0, cached_tokens=400) == table.cost("ernie-3.5-8k", 1000, 0)


def test_the_2026_models_are_priced_from_the_dated_sources() -> None:
    table = prices()
    # one_api_2026 (Baidu's page wmh4sv6ya, verified 2026-06-13): ERNIE 5.1, input <=32k: ¥4 / ¥18 per 1M tokens
    assert table.cost("ERNIE-5.1", 1_000_000, 1_000_000) == pytest.approx(4 + 18)
    five = cloud_model("ernie-5.1")
    assert five is not None and five.price is not None and five.price.as_of == "2026-06-13"
    assert "wmh4sv6ya" in five.source or "one-api" in five.source
    assert [(t.above_input_tokens, t.input, t.output) for t in five.price.tiers] == [(32768, 0.006, 0.022)]
    # the ledger prices at the first tier, also above 32k tokens of input
    assert table.cost("ernie-5.1", 40_000, 0) == pytest.approx(40 * 0.004)
    expected = {"ernie-5.0": (0.006, 0.024), "ernie-5.0-thinking-latest": (0.006, 0.024), "ernie-x1.1": (0.001, 0.004),
                "ernie-4.5-turbo-128k": (0.0008, 0.0032), "ernie-4.5-turbo-32k": (0.0008, 0.0032),
                "ernie-4.5-turbo-vl": (0.003, 0.009), "ernie-4.5-8k-preview": (0.004, 0.016),
                "ernie-x1-turbo-32k": (0.001, 0.004), "deepseek-v3.2": (0.002, 0.003),
                "deepseek-v4-pro": (0.012, 0.024), "deepseek-v4-flash": (0.001, 0.002),
                "ernie-3.5-8k": (0.0008, 0.002), "ernie-lite-8k": (0.0, 0.0)}
    for model, (inp, out) in expected.items():
        entry = cloud_model(model)
        assert entry is not None and entry.price is not None and entry.as_of.startswith("2026"), model
        assert (entry.price.input, entry.price.output) == (inp, out), model
        assert table.cost(model, 1000, 1000) == pytest.approx(inp + out), model
    assert cloud_model("deepseek-v3.2").price.cache_hit == 0.0004  # type: ignore[union-attr]


def test_retirements_name_the_date_and_the_replacement() -> None:
    assert retirement("ernie-lite-8k") == ("2026-06-09", "ernie-lite-pro-128k")
    assert retirement("ERNIE-Bot-turbo") == retirement("ernie-lite-8k")  # any name successor() knows
    assert retirement("deepseek-v3") == ("2026-06-30", "deepseek-v4-pro")
    assert retirement("ernie-char-8k") == ("2026-06-09", None)  # retired, no replacement named
    assert retirement("ernie-4.5-turbo-128k") is None and retirement("never-heard-of-it") is None
    for model in cloud_models():
        if model.replacement is not None:
            assert model.retired_on is not None and cloud_model(model.replacement) is not None, model.id


def test_current_id_follows_the_replacements_from_the_retirement_date() -> None:
    assert current_id("ernie-3.5-8k", date(2026, 6, 30)) == "ernie-4.5-turbo-128k"  # retired on that day
    assert current_id("ernie-3.5-8k", date(2026, 6, 29)) == "ernie-3.5-8k"
    # a 2024 name chains: ERNIE-Bot-turbo -> ernie-lite-8k -> ernie-lite-pro-128k -> ernie-4.5-turbo-128k
    assert current_id("ERNIE-Bot-turbo", date(2026, 11, 26)) == "ernie-4.5-turbo-128k" == V2_DEFAULT_MODEL
    assert current_id("ERNIE-Bot-turbo", date(2026, 6, 15)) == "ernie-lite-pro-128k"
    assert current_id("ERNIE-Bot-turbo", date(2026, 6, 8)) == "ernie-lite-8k"
    assert current_id("ernie-char-8k", date(2026, 11, 26)) == "ernie-char-8k"  # no replacement: stays
    assert current_id("Llama-2-7B-Chat") == "Llama-2-7B-Chat"  # no v2 successor: unchanged
    assert current_id("ernie-4.5-turbo-128k") == "ernie-4.5-turbo-128k"


def test_current_id_stops_at_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    import qfnb.protocol.console.cloud_models as cm

    loop = {"ernie-3.5-8k": ("2026-01-01", "ernie-4.0-8k"), "ernie-4.0-8k": ("2026-01-01", "ernie-3.5-8k")}
    monkeypatch.setattr(cm, "retirement", loop.get)
    assert current_id("ernie-3.5-8k", date(2026, 11, 26)) == "ernie-4.0-8k"


# --- user prices ---------------------------------------------------------------------------------

def test_prices_given_by_call_add_and_override_the_table() -> None:
    table = qfnb.usage.prices({"my-model": {"input": 0.004, "output": 0.016, "batch": {"input": 0.001,
                                                                                      "output": 0.002}},
                               "ERNIE-4.0-Turbo-8K": {"input": 0.01, "output": 0.02}})
    assert table.cost("My-Model", 1000, 1000) == pytest.approx(0.02)
    assert table.cost("my_model", 1000, 1000, batch=True) == pytest.approx(0.003)
    # the user's row wins, and the table's batch and cache-hit prices for it go with the old row
    assert table.cost("ernie-4.0-turbo-8k", 1000, 1000, batch=True, cached_tokens=500) == pytest.approx(0.03)
    assert prices() is table or prices().cost("my-model", 1000, 0) == pytest.approx(0.004)
    clear_prices()
    assert prices().cost("my-model", 1, 1) is None


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_qfnb_prices_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = tmp_path / f"prices{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"deepseek-v3.2": {"input": 0.002, "output": 0.003, "cache_hit": 0.0002}}))
    else:
        path.write_text('["deepseek-v3.2"]\ninput = 0.002\noutput = 0.003\ncache_hit = 0.0002\n')
    monkeypatch.setenv("QFNB_PRICES", str(path))
    assert prices().cost("DeepSeek-V3.2", 1000, 1000, cached_tokens=1000) == pytest.approx(0.0032)
    path.write_text("garbage")  # read once: a later change is not seen
    assert prices().cost("deepseek-v3.2", 1000, 0) == pytest.approx(0.002)
    qfnb.usage.prices({"deepseek-v3.2": {"input": 0.5, "output": 0.5}})  # a call wins over the file
    assert prices().cost("deepseek-v3.2", 1000, 0) == pytest.approx(0.5)


@pytest.mark.parametrize(("content", "field"), [
    ('{"m": {"input": "cheap", "output": 1}}', "m.input"),
    ('{"m": {"input": 1}}', "m.output"),
    ('{"m": {"input": 1, "output": 1, "batch": {"input": -1, "output": 1}}}', "m.batch.input"),
    ('{"m": {"input": 1, "output": 1, "price": 2}}', "m.price"),
    ('{"m": 3}', "m:"),
    ("[1, 2]", "mapping"),
    ("{not json", "not valid JSON"),
])
def test_a_malformed_prices_file_names_the_file_and_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               content: str, field: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    monkeypatch.setenv("QFNB_PRICES", str(path))
    with pytest.raises(PriceError) as err:
        prices()
    assert str(path) in str(err.value) and field in str(err.value)


@pytest.mark.parametrize(("content", "field"), [
    ('{"m": {"input": Infinity, "output": 1}}', "m.input"),
    ('{"m": {"input": 1, "output": NaN}}', "m.output"),
    ('{"m": {"input": 1, "output": -Infinity}}', "m.output"),
    ('{"m": {"input": 1e999, "output": 1}}', "m.input"),  # JSON's own overflow to inf
    ('{"m": {"input": 1, "output": 1, "cache_hit": 1e300}}', "m.cache_hit"),
    ('{"m": {"input": 1, "output": 1, "batch": {"input": 1, "output": -0.5}}}', "m.batch.output"),
    ('{"m": {"input": 1' + "0" * 400 + ', "output": 1}}', "m.input"),  # an integer past any float
    ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    ('{"m": ' * 50_000 + "1" + "}" * 50_000, "nests too deeply"),
])
def test_a_hostile_prices_file_is_refused_naming_the_file_and_the_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, field: str) -> None:
    path = tmp_path / "hostile.json"
    path.write_text(content)
    monkeypatch.setenv("QFNB_PRICES", str(path))
    with pytest.raises(PriceError) as err:
        prices()
    assert str(path) in str(err.value) and field in str(err.value), str(err.value)[:300]


def test_a_deep_toml_prices_file_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("m = " + "[" * 100_000 + "]" * 100_000)
    monkeypatch.setenv("QFNB_PRICES", str(path))
    with pytest.raises(PriceError, match=r"deep\.toml.*nests too deeply"):
        prices()


def test_a_device_or_a_huge_prices_file_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QFNB_PRICES", "/dev/zero")  # read until memory ran out
    with pytest.raises(PriceError, match="/dev/zero: not a regular file"):
        prices()
    clear_prices()
    big = tmp_path / "big.json"
    big.write_text('{"m": {"input": 1, "output": 1}, "pad": "' + "x" * (2 << 20) + '"}')
    monkeypatch.setenv("QFNB_PRICES", str(big))
    with pytest.raises(PriceError, match=r"big\.json: the price file is over 1,048,576 bytes"):
        prices()


def test_an_infinite_price_given_by_call_is_refused_and_a_nan_cost_never_passes_a_budget() -> None:
    for bad in (float("inf"), float("nan"), -1.0, 10**400):
        with pytest.raises(PriceError, match=r"m.input: must be a finite number"):
            qfnb.usage.prices({"m": {"input": bad, "output": 1}})
    held = budget(yuan=0.01)
    with pytest.raises(BudgetExceeded, match="came out as"):
        held.reserve(10, float("nan"))  # whatever made it: refused, not compared false
    assert held.reserved_yuan == 0


def test_a_missing_prices_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QFNB_PRICES", str(tmp_path / "nope.json"))
    with pytest.raises(PriceError, match=r"nope\.json"):
        prices()


def test_bad_prices_given_by_call_are_refused() -> None:
    with pytest.raises(PriceError, match=r"qfnb.usage.prices\(\): m.output"):
        qfnb.usage.prices({"m": {"input": 1, "output": None}})


# --- the ¥ budget and a model without a price ----------------------------------------------------

def test_a_yuan_budget_refuses_an_unpriced_model_before_sending(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    budget(yuan=1.0)
    with pytest.raises(UnpricedModel) as err:
        chat.do(model="ERNIE-Speed-Pro-8K", messages=MSG, max_output_tokens=20)
    assert isinstance(err.value, BudgetExceeded)
    message = str(err.value)
    assert "ERNIE-Speed-Pro-8K" in message and "qfnb.usage.prices(" in message and "QFNB_PRICES" in message
    assert _chat_posts(fake) == 0  # nothing was sent


def test_a_priced_model_under_the_yuan_budget_goes_through(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    spend = budget(yuan=1.0)
    chat.do(model="ERNIE-3.5-8K", messages=MSG, max_output_tokens=20)
    assert _chat_posts(fake) == 1 and 0 < spend.spent_yuan < 1.0 and spend.reserved_yuan == 0


def test_a_supplied_price_lets_the_model_through(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    budget(yuan=1.0)
    qfnb.usage.prices({"ERNIE-Speed-Pro-8K": {"input": 0.001, "output": 0.002}})
    chat.do(model="ERNIE-Speed-Pro-8K", messages=MSG, max_output_tokens=20)
    assert _chat_posts(fake) == 1


def test_a_token_budget_is_unaffected_by_an_unpriced_model(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    budget(tokens=10_000)
    chat.do(model="ERNIE-Speed-Pro-8K", messages=MSG, max_output_tokens=20)
    assert _chat_posts(fake) == 1


def test_a_local_model_costs_nothing_and_stays_allowed_under_a_yuan_budget() -> None:
    budget(yuan=0.5)
    assert worst_yuan("Qwen2.5-0.5B-Instruct", 1000, 1000, local=True) == 0.0
    with pytest.raises(UnpricedModel, match=r"Qwen2\.5-0\.5B-Instruct"):
        worst_yuan("Qwen2.5-0.5B-Instruct", 1000, 1000, local=False)
    budget()
    assert worst_yuan("Qwen2.5-0.5B-Instruct", 1000, 1000, local=False) == 0.0  # no budget: unknown, not refused

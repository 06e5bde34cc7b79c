"""The budget holds under concurrency (issue 34 §1): a call reserves its worst case before it is
sent and settles to its real usage, so concurrent calls cannot pass it together; a stream closed
early is counted with what arrived (budget and ledger); an evaluation obeys the same budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import qfnb
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import BudgetExceeded, budget
from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py

CAP = 40  # max_output_tokens of every call here: a call's worst case is its prompt and 40


def _sent(fake: Any) -> int:
    return len([r for r in fake.calls("/chat/") if r.method == "POST"])


def _answered(results: list[Any]) -> list[Any]:
    return [r for r in results if not isinstance(r, BaseException)]


async def test_twenty_concurrent_ado_calls_never_pass_the_budget_together(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    spend = budget(tokens=100)
    calls = [chat.ado(messages=[{"role": "user", "content": f"q{i:02d}"}], max_output_tokens=CAP) for i in range(20)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    answered = _answered(results)
    assert answered and all(isinstance(r, BudgetExceeded) for r in results if r not in answered)
    used = sum(r["usage"]["total_tokens"] for r in answered)
    assert spend.spent_tokens == used <= 100 and spend.reserved_tokens == 0
    assert _sent(fake) == len(answered)  # a refused call was never sent


def test_batch_do_with_twenty_workers_never_passes_the_budget(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    spend = budget(tokens=100)
    prompts = [[{"role": "user", "content": f"q{i:02d}"}] for i in range(40)]
    results = chat.batch_do(prompts, worker_num=20, max_output_tokens=CAP).results()
    answered = _answered(results)
    assert answered and any("budget" in str(r) for r in results if r not in answered)
    assert spend.spent_tokens == sum(r["usage"]["total_tokens"] for r in answered) <= 100
    assert _sent(fake) == len(answered) and spend.reserved_tokens == 0


@pytest.mark.parametrize("version", [1, 2])
def test_a_stream_closed_after_its_first_chunk_is_counted(fake: Any, make_config: Any, version: int) -> None:
    """v1 chunks carry the running ``usage``: the last one received is what is counted; a v2 stream
    without usage is counted as its prompt's estimate plus one token per chunk received."""
    fake.stream_chunks = 4
    chat = qfnb.ChatCompletion(config=make_config(), version=version,
                               **({"model": "ernie-speed-8k"} if version == 2 else {}))
    spend = budget(tokens=10_000)
    for _ in range(3):
        for chunk in chat.do(messages=[{"role": "user", "content": "hello"}], stream=True, max_output_tokens=CAP):
            assert chunk is not None
            break  # the caller stops reading after the first chunk
    rows = ledger_mod.default_ledger().rows()
    assert len(rows) == 3 and all(r.completion_tokens >= 1 and r.total_tokens > r.completion_tokens for r in rows)
    assert spend.spent_tokens == sum(r.total_tokens for r in rows) and spend.reserved_tokens == 0


def test_an_evaluation_stops_at_the_budget(fake: Any, make_config: Any, caplog: pytest.LogCaptureFixture) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    spend = budget(tokens=200)  # a call's worst case is about 97 here, its real usage about 25
    data = [{"prompt": f"p{i}", "response": [["x"]]} for i in range(12)]
    EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"chat": chat}, data, worker_num=6,
                                                                     max_output_tokens=CAP)
    assert "token budget" in caplog.text  # the refused inferences are the evaluation's failed rows
    assert spend.spent_tokens <= 200 and 0 < _sent(fake) < 12 and spend.reserved_tokens == 0


def test_a_refused_call_names_what_is_held_by_calls_in_flight() -> None:
    spend = budget(tokens=100)
    held = spend.reserve(70)
    with pytest.raises(BudgetExceeded, match="70 more held by calls in flight"):
        spend.reserve(40)
    spend.settle(held, 20, 0.0)
    spend.release(spend.reserve(80))  # room again once the first settled to its real 20
    assert (spend.spent_tokens, spend.reserved_tokens) == (20, 0)


@pytest.mark.parametrize("via", ["ChatCompletion", "Qianfan"])
def test_a_v2_stream_read_to_the_end_without_include_usage_is_counted(fake: Any, make_config: Any,
                                                                      via: str) -> None:
    """Issue 43 §3: a v2 chat stream whose caller did not ask for ``stream_options.include_usage`` was
    recorded as 0 tokens. It is sent asking for it, and the engine's own count reaches the ledger and
    the budget; the caller still sees no usage chunk."""
    spend = budget(tokens=1_000)
    ask = [{"role": "user", "content": "hello there"}]
    if via == "ChatCompletion":
        chat = qfnb.ChatCompletion(config=make_config(), version=2, model="ernie-speed-8k")
        bodies = [dict(c.body) for c in chat.do(messages=ask, stream=True, max_tokens=CAP)]
    else:
        client = qfnb.Qianfan(config=make_config())
        stream = client.chat.completions.create(model="ernie-speed-8k", messages=ask, stream=True, max_tokens=CAP)
        bodies = [chunk.raw for chunk in stream]
    assert bodies and all(b["choices"] for b in bodies)  # the usage chunk qfnb asked for is not passed on
    answer = "".join(b["choices"][0]["delta"]["content"] for b in bodies)
    (sent,) = [r.json for r in fake.calls("/v2/chat/")]
    assert sent["stream_options"] == {"include_usage": True}
    (row,) = ledger_mod.default_ledger().rows()
    assert (row.api, row.prompt_tokens, row.completion_tokens) == ("v2/chat", len("hello there"), len(answer))
    assert spend.spent_tokens == row.total_tokens == len("hello there") + len(answer) > 0
    assert spend.reserved_tokens == 0


FUNCTION = {"name": "lookup_city_weather", "description": "Look up today's weather in a city. " * 2,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.mark.parametrize("extra", [{"n": 8}, {"functions": [FUNCTION] * 12}], ids=["n=8", "12 functions"])
def test_a_v1_call_with_n_or_many_functions_is_refused_before_sending(fake: Any, make_config: Any,
                                                                      extra: dict[str, Any]) -> None:
    """Issue 43 §3: one call crossed the budget (``n=8`` spent 170 of 100, 12 functions 1,406 of 300).
    The reservation counts ``n`` answers and the function schemas the template renders into the prompt
    (beyond the template's tool instructions), so the call is refused unsent; without them it fits and
    is sent."""
    chat = qfnb.ChatCompletion(config=make_config())
    spend = budget(tokens=300)  # the call alone: about 80 at most; with 12 tool instructions alone: about 210
    ask = [{"role": "user", "content": "hello there"}]
    with pytest.raises(BudgetExceeded, match="token budget"):
        chat.do(messages=ask, max_output_tokens=CAP, **extra)
    assert _sent(fake) == 0 and spend.spent_tokens == 0 and spend.reserved_tokens == 0
    chat.do(messages=ask, max_output_tokens=CAP)
    assert _sent(fake) == 1 and 0 < spend.spent_tokens <= 300 and spend.reserved_tokens == 0

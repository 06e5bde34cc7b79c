"""Every call accountable against the real engine (issue 43 §3, "How it is checked"): the real
``openai`` SDK through ``qfnb.openai_client()`` on a daemon this test starts on the default local
chat model. The ledger holds, for a plain chat, a stream that did not ask for usage, a Responses
and a Messages call, exactly the tokens the engine counted; the budget's prompt estimate is never
below what the engine's template made of the prompt (tools and Chinese included); and a budget of
100 tokens holds against ``n=8``, 12 tool schemas, a stream without usage, Responses, Messages and
batches: what was spent never passes it, and is what the engine counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.record.budget import BudgetExceeded
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
openai = pytest.importorskip("openai")

MODEL = LOCAL_CHAT_MODEL
LONG = "Count from 1 to 50, one number a line."  # an answer longer than its cap: the engine stops at 8
ASK = [{"role": "user", "content": LONG}]
CAP = 8


def _tool(i: int) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": f"lookup_{i}", "description": f"Look up record {i} of the customer table by its id.",
        "parameters": {"type": "object", "properties": {"id": {"type": "string", "description": "the id"}},
                       "required": ["id"]}}}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from qfnb._core.backend import daemon

    root = tmp_path_factory.mktemp("accounting") / "data"
    yield root
    daemon.stop_daemon(root, force=True, timeout=30)


@pytest.fixture
def sdk(data: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The openai client, with this daemon's data dir as the ledger's (no budget, cache off)."""
    import qfnb
    from qfnb._core.record import cache as cache_mod
    from qfnb._core.record import ledger as ledger_mod
    from qfnb._core.record.budget import clear_budget

    monkeypatch.setenv("QFNB_DATA_DIR", str(data))
    cache_mod._default.clear()
    ledger_mod._default.clear()
    clear_budget()
    yield qfnb.openai_client(data_dir=data, timeout=600, max_retries=0)
    clear_budget()


def _new_rows(since: float) -> list[Any]:
    from qfnb._core.record.ledger import default_ledger

    return default_ledger().rows(since=since)


def test_the_ledger_holds_the_engines_own_counts_on_every_route(sdk: Any) -> None:
    import time

    since = time.time()
    plain = sdk.chat.completions.create(model=MODEL, messages=ASK, max_tokens=CAP, temperature=0)
    assert plain.usage.completion_tokens == CAP  # the engine stopped at the cap
    chunks = list(sdk.chat.completions.create(model=MODEL, messages=ASK, max_tokens=CAP, temperature=0,
                                              stream=True))
    assert chunks and all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    answer = sdk.responses.create(model=MODEL, input=LONG, max_output_tokens=CAP, temperature=0)
    message = sdk.post("/messages", cast_to=object, body={"model": MODEL, "max_tokens": CAP, "messages": ASK})
    usage = message["usage"]
    rows = _new_rows(since)
    assert [r.api for r in rows] == ["v2/chat", "v2/chat", "v2/responses", "v2/messages"]
    engine = [(plain.usage.prompt_tokens, CAP), (plain.usage.prompt_tokens, CAP),  # the same prompt, streamed
              (answer.usage.input_tokens, answer.usage.output_tokens),
              (usage["input_tokens"] + usage["cache_read_input_tokens"], usage["output_tokens"])]
    assert [(r.prompt_tokens, r.completion_tokens) for r in rows] == engine
    assert all(r.total_tokens == r.prompt_tokens + r.completion_tokens and not r.cache_hit for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["short", "chinese", "one tool", "twelve tools as functions"])
def test_the_prompt_estimate_is_never_below_the_engines_count(sdk: Any, case: str) -> None:
    """What a budget reserves for the prompt (its JSON at 2 bytes a token, and the template's own
    tokens) against what the engine's chat template made of it."""
    from qfnb._core.http.recording.recorded import TEMPLATE_TOKENS, TOOLS_TEMPLATE_TOKENS, prompt_estimate

    messages = [{"role": "user", "content": "hi"}] if case == "short" else (
        [{"role": "user", "content": "请用一句话介绍千帆大模型平台的主要功能和用途。"}] if case == "chinese" else ASK)
    tools = [] if case in ("short", "chinese") else [_tool(i) for i in range(1 if case == "one tool" else 12)]
    body: dict[str, Any] = {"messages": messages, **({"tools": tools} if tools else {})}
    done = sdk.chat.completions.create(model=MODEL, max_tokens=1, **body)
    # v1 functions are the same schemas: the estimate reads both fields alike
    estimate = prompt_estimate({"messages": messages, "functions": [t["function"] for t in tools]} if tools
                               else body) + TEMPLATE_TOKENS + (TOOLS_TEMPLATE_TOKENS if tools else 0)
    assert done.usage.prompt_tokens <= estimate, (case, done.usage.prompt_tokens, estimate)


def test_a_budget_of_100_holds_on_every_path(sdk: Any) -> None:
    import time

    from qfnb._core.record.budget import budget
    from qfnb.resources.batch_job import BatchJob

    since = time.time()
    spend = budget(tokens=100)
    with pytest.raises(openai.RateLimitError, match="token budget"):  # 8 answers of the default 1,024
        sdk.chat.completions.create(model=MODEL, messages=ASK, n=8)
    with pytest.raises(openai.RateLimitError, match="token budget"):  # 12 tool schemas, capped at 8
        sdk.chat.completions.create(model=MODEL, messages=ASK, max_tokens=CAP, tools=[_tool(i) for i in range(12)])
    # greedy, as the other calls here: a sampled answer may end before the cap (CI once saw 6 tokens of 8)
    chunks = list(sdk.chat.completions.create(model=MODEL, messages=ASK, max_tokens=CAP, temperature=0, stream=True))
    assert chunks and all(c.choices for c in chunks)  # a stream without usage: sent, counted
    body = {"model": MODEL, "messages": ASK, "max_tokens": CAP}
    lines = "".join(json.dumps({"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions", "body": body})
                    + "\n" for i in range(2)).encode()
    upload = sdk.files.create(file=("rows.jsonl", lines), purpose="batch")  # a batch: its rows' worst case
    for call in (lambda: sdk.responses.create(model=MODEL, input=LONG, max_output_tokens=CAP),
                 lambda: sdk.post("/messages", cast_to=object,
                                  body={"model": MODEL, "max_tokens": CAP, "messages": ASK}),
                 lambda: sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                            completion_window="24h")):
        with pytest.raises(openai.RateLimitError):  # what is left cannot hold their worst case
            call()
    with pytest.raises(BudgetExceeded):  # qfnb's durable batch: its rows' worst case, refused
        BatchJob.submit([LONG, LONG], model=MODEL, inference_params={"max_output_tokens": CAP})
    rows = _new_rows(since)
    assert [r.api for r in rows] == ["v2/chat"]
    assert spend.spent_tokens == rows[0].total_tokens <= 100 and spend.reserved_tokens == 0
    assert rows[0].completion_tokens == CAP and rows[0].prompt_tokens > 20  # the engine's counts

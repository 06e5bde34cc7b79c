"""``/metrics`` agrees with the usage ledger to the token (issue 56): traffic through every model route
the clients record (qfnb's own v1 calls, the openai SDK through ``qfnb.openai_client()``'s transport:
chat, a stream that did not ask for ``include_usage``, ``n=2``, text completions, embeddings,
Responses, Messages, and a durable batch job's rows), then the platform's counters, parsed with
``prometheus_client.parser``, equal what ``%qfusage --all`` sums from the ledger, per model."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer
from prometheus_client.parser import text_string_to_metric_families

from qfnb._core.record import cache as cache_mod
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import clear_budget
from qfnb._core.runtime.openai_recorded import SyncRecordedTransport
from qfnb.resources import ChatCompletion, Completion, Embedding
from tests.fakes.local_platform import ServedPlatform, served_platform

openai = pytest.importorskip("openai")

ASK = [{"role": "user", "content": "hello there, how are you"}]


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "record"))
    cache_mod._default.clear()
    ledger_mod._default.clear()
    clear_budget()
    with served_platform(tmp_path / "data") as platform:
        platform.set_env(monkeypatch)
        yield platform


def _openai(served: ServedPlatform, key: str) -> Any:
    transport = SyncRecordedTransport(served.config(embedded=True), watch_first_s=0.05)
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0, timeout=30,
                         http_client=openai.DefaultHttpxClient(transport=transport))


def scrape(url: str, key: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` parsed: sample name -> labels -> value."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _by_model(samples: dict[tuple[tuple[str, str], ...], float], batch: bool) -> Counter[str]:
    out: Counter[str] = Counter()
    for labels, value in samples.items():
        named = dict(labels)
        if (named["route"] == "batch") == batch and named.get("status", "2xx") == "2xx":
            out[named["model"]] += int(value)
    return out


def test_metrics_equal_the_ledger_on_every_route(served: ServedPlatform) -> None:
    key = served.bearer_token()
    ChatCompletion(model="tiny-chat").do(messages=ASK)
    list(ChatCompletion(model="tiny-chat").do(messages=ASK, stream=True))
    Completion(model="tiny-chat").do(prompt="once upon a time")
    Embedding(model="tiny-embed").do(texts=["one two three", "four five"])
    sdk = _openai(served, key)
    sdk.chat.completions.create(model="tiny-chat", messages=ASK)
    chunks = list(sdk.chat.completions.create(model="tiny-chat", messages=ASK, stream=True))
    assert chunks and all(c.usage is None for c in chunks)  # the caller did not ask for usage
    sdk.chat.completions.create(model="tiny-chat", messages=ASK, n=2)
    sdk.completions.create(model="tiny-chat", prompt="once upon a time")
    sdk.embeddings.create(model="tiny-embed", input=["alpha beta", "gamma"])
    sdk.responses.create(model="tiny-chat", input="hello there")
    with sdk.responses.stream(model="tiny-chat", input="stream me") as stream:
        stream.get_final_response()
    sdk.post("/messages", cast_to=object, body={"model": "tiny-chat", "max_tokens": 20, "messages": ASK})
    refused = httpx.post(served.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "tiny-chat", "messages": ASK, "temperature": 7})
    assert refused.status_code == 400  # counted as a 4xx request, no tokens
    job = ChatCompletion(model="tiny-chat").batch_do([[{"role": "user", "content": f"row {i}"}] for i in range(3)],
                                                       durable=True)
    assert job.wait(interval=0.05).status == "Done"

    rows = ledger_mod.default_ledger().rows()
    calls = [r for r in rows if r.api != "batch-job"]
    batches = [r for r in rows if r.api == "batch-job"]
    assert len(calls) == 12 and len(batches) == 1
    found = scrape(served.url, key)
    prompt, completion = found["qfnb_prompt_tokens_total"], found["qfnb_completion_tokens_total"]
    for batch, kept in ((False, calls), (True, batches)):
        assert +_by_model(prompt, batch) == +_sum(kept, "prompt_tokens")  # (+: no zero entries)
        assert +_by_model(completion, batch) == +_sum(kept, "completion_tokens")
    requests = found["qfnb_requests_total"]
    assert _by_model(requests, False) == Counter(r.model for r in calls)
    assert _by_model(requests, True) == Counter({"tiny-chat": 3})  # the batch's rows, one each
    assert [b.requests for b in batches] == [3]  # the ledger's batch row stands for its 3 calls too
    assert sum(v for k, v in requests.items() if dict(k)["status"] == "4xx") == 1
    assert sum(prompt.values()) + sum(completion.values()) == sum(r.total_tokens for r in rows) > 0


def _sum(rows: list[Any], field: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for r in rows:
        out[r.model] += getattr(r, field)
    return out


def test_metrics_need_the_key_off_this_machine(served: ServedPlatform) -> None:
    assert httpx.get(served.url + "/metrics").status_code == 200  # a local Prometheus, loopback both ways
    foreign = httpx.get(served.url + "/metrics", headers={"Host": "attacker.example"})
    assert foreign.status_code == 401 and "qfnb_" not in foreign.text
    assert httpx.get(served.url + "/metrics", headers={"Host": "attacker.example",
                                                       "Authorization": "Bearer nope"}).status_code == 401
    signed = httpx.get(served.url + "/metrics", headers={"Host": "attacker.example"}, auth=Signer())
    assert signed.status_code == 200 and "qfnb_requests_total" in signed.text


def test_a_fine_tunes_trained_tokens_equal_the_ledgers(served: ServedPlatform) -> None:
    """A few-step fine-tune (the platform's fast stand-in worker): ``qfnb_trained_tokens_total``
    equals the trained tokens the trainer wrote to the ledger, per model."""
    from qfnb.dataset import Dataset
    from qfnb.trainer import LLMFinetune, TrainConfig

    rows = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(6)]
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(rows),
                          train_config=TrainConfig(epoch=1, batch_size=2, max_steps=3, extras={"stepSeconds": 0.01}),
                          config=served.config(train_status_polling_interval=0.05,
                                               release_status_polling_interval=0.05))
    trainer.run()
    assert trainer.status == "ModelPublished", trainer.status
    tuned = [r for r in ledger_mod.default_ledger().rows() if r.api == "fine-tune"]
    assert len(tuned) == 1 and tuned[0].trained_tokens > 0
    trained = scrape(served.url, served.bearer_token())["qfnb_trained_tokens_total"]
    assert {dict(k)["model"]: int(v) for k, v in trained.items()} == _sum(tuned, "trained_tokens")


@pytest.fixture()
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    """The platform found as the default (no credentials), its data dir the clients' too (as ~/.qfnb is)."""
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))
    cache_mod._default.clear()
    ledger_mod._default.clear()
    clear_budget()
    with served_platform(tmp_path / "data") as platform:
        platform.as_default_backend(monkeypatch)
        yield platform


def test_metrics_count_every_target_the_ledger_holds(shared: ServedPlatform) -> None:
    """A Ray batch's rows ran on the workers' engines and a cloud batch's on the cloud: /metrics held
    15,010 of the 120,871 tokens the ledger counted. ``qfnb_usage_*`` counts every target's, as the
    ledger does (a batch row one call, a replay none)."""
    from qfnb._core.record.ledger import UsageRow

    served = shared

    ChatCompletion(model="tiny-chat").do(messages=ASK)
    ledger = ledger_mod.default_ledger()
    ledger.record(UsageRow(api="chat", model="Tiny-Chat", platform="local", prompt_tokens=7, completion_tokens=3,
                           total_tokens=10, cache_hit=True))  # a replay from the cache: no call, no tokens spent
    ledger.record(UsageRow(api="batch-job", model="Gemma-3-270M", platform="ray", prompt_tokens=300,
                           completion_tokens=200, total_tokens=500, requests=40))
    ledger.record(UsageRow(api="batch-job", model="ernie-4.5-turbo-128k", platform="cloud", prompt_tokens=900,
                           completion_tokens=100, total_tokens=1000, requests=200))
    ledger.flush()
    found = scrape(served.url, served.bearer_token())
    calls = {(dict(k)["target"], dict(k)["model"]): int(v) for k, v in found["qfnb_usage_calls_total"].items()}
    assert calls == {("local", "Tiny-Chat"): 1, ("ray", "Gemma-3-270M"): 40, ("cloud", "ernie-4.5-turbo-128k"): 200}
    tokens = {tuple(sorted(k)): int(v) for k, v in found["qfnb_usage_tokens_total"].items()}
    assert tokens[(("kind", "prompt"), ("model", "Gemma-3-270M"), ("target", "ray"))] == 300
    assert sum(tokens.values()) == sum(r.total_tokens for r in ledger.rows() if not r.cache_hit)
    (local,) = [r for r in ledger.rows() if r.platform == "local" and not r.cache_hit]
    assert sum(v for k, v in found["qfnb_requests_total"].items() if dict(k)["route"] != "batch") == 1  # served here
    assert local.total_tokens == sum(v for k, v in tokens.items() if ("target", "local") in k)

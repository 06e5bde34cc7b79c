"""The 2026 OpenAI chat fields, stored chat completions and streamed legacy completions, through
the real ``openai`` SDK against the platform's app with engine doubles (issue 59, items 3 and 4):
each field answered 200 and acted on, or named in ``X-Qfnb-Ignored-Fields``; a stored completion
read back, listed by metadata, updated and deleted; ``completions.create(stream=True)`` as text
chunks with the usage last, the ledger holding what the stream said, and a client that leaves
stopping the generation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from platform_doubles import FakeChat, FakeDelta

from qfnb._core.config import Config
from qfnb._core.record import ledger as ledger_mod
from qfnb.local.engines.ask import Ask, ChatAsk, Sampling
from tests.fakes.local_platform import ServedPlatform

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

from qfnb._core.runtime.openai_recorded import SyncRecordedTransport  # noqa: E402

IGNORED = "x-qfnb-ignored-fields"
HELLO = [{"role": "user", "content": "hello there"}]


def _sdk(served: ServedPlatform, prefix: str = "/v1") -> Any:
    return openai.OpenAI(base_url=served.url + prefix, api_key=served.bearer_token(), max_retries=0)


def _recorded_sdk(served: ServedPlatform) -> Any:
    """The SDK over qfnb's recorded transport (cache, budget, ledger), as ``qfnb.openai_client()`` builds it."""
    transport = SyncRecordedTransport(Config.from_env({}, base_url=served.url))
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.bearer_token(), max_retries=0,
                         http_client=openai.DefaultHttpxClient(transport=transport))


class _AskLog:
    """Wraps the registry's engines so a test sees each ask the platform made of them."""

    def __init__(self, served: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asks: list[ChatAsk] = []
        inner = served.registry.chat

        def chat(endpoint: str) -> Any:
            engine = inner(endpoint)
            log = self

            class Logged:
                name, gate, can_call_tools = engine.name, engine.gate, engine.can_call_tools

                def generate(self, ask: Ask) -> Any:
                    if isinstance(ask, ChatAsk):
                        log.asks.append(ask)
                    return engine.generate(ask)

            return Logged()

        monkeypatch.setattr(served.registry, "chat", chat)


def test_each_2026_field_is_answered_and_acted_on_or_named_as_ignored(
        served: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    sdk, log = _sdk(served), _AskLog(served, monkeypatch)
    chat = sdk.chat.completions.with_raw_response

    tiered = chat.create(model="tiny-chat", messages=HELLO, service_tier="flex", modalities=["text"],
                         safety_identifier="u-1", reasoning_effort="none")
    assert tiered.parse().service_tier == "default" and IGNORED not in tiered.headers
    plain = chat.create(model="tiny-chat", messages=HELLO)
    assert plain.parse().service_tier is None  # named only when asked, as OpenAI's older answers
    # our llama-server (Other-Chat's kind) keeps a key's requests on one slot: the ask carries it
    pinned = chat.create(model="other-chat", messages=HELLO, prompt_cache_key="conv-7")
    assert log.asks[-1].cache_key == "conv-7" and IGNORED not in pinned.headers
    # an in-process model has one slot and does not reason: both accepted and named, once
    single = chat.create(model="tiny-chat", messages=HELLO, prompt_cache_key="conv-7", reasoning_effort="high",
                         metadata={"k": "v"})
    assert single.headers[IGNORED] == "metadata, prompt_cache_key, reasoning_effort"
    assert log.asks[-1].reasoning_effort == "high" and single.parse().choices[0].message.content == (
        "tiny-chat: hello there")
    streamed = chat.create(model="tiny-chat", messages=HELLO, stream=True, reasoning_effort="low")
    assert streamed.headers[IGNORED] == "reasoning_effort"
    assert [c.service_tier for c in streamed.parse()][-1] is None


@pytest.mark.parametrize(("extra", "param", "says"), [
    ({"modalities": ["text", "audio"]}, "modalities", "'audio' is not served"),
    ({"service_tier": "turbo"}, "service_tier", "'default'"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort", "'minimal'"),
    ({"metadata": {"k": "x" * 513}}, "metadata.k", "512 characters"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16"),
    ({"store": "yes"}, "store", "true or false"),
])
def test_a_bad_2026_value_is_refused_by_name(served: ServedPlatform, extra: dict[str, Any], param: str,
                                             says: str) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        _sdk(served).chat.completions.create(model="tiny-chat", messages=HELLO, extra_body=extra)
    assert bad.value.body["param"] == param and says in bad.value.body["message"]


def test_a_stored_completion_is_read_back_listed_updated_and_deleted(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    made = [sdk.chat.completions.create(model="tiny-chat", store=True, metadata={"trip": "rome", "n": str(i)},
                                        messages=[{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": f"turn {i}"}], temperature=0.5)
            for i in range(3)]
    other = sdk.chat.completions.create(model="other-chat", store=True, metadata={"trip": "oslo"}, messages=HELLO,
                                        user="u-9")
    unstored = sdk.chat.completions.create(model="tiny-chat", messages=HELLO, metadata={"trip": "rome"})
    with pytest.raises(openai.NotFoundError):  # store false (the default) keeps nothing
        sdk.chat.completions.retrieve(unstored.id)

    back = sdk.chat.completions.retrieve(made[1].id)
    assert back.choices[0].message.content == "tiny-chat: turn 1" and back.usage == made[1].usage
    assert back.metadata == {"trip": "rome", "n": "1"} and back.temperature == 0.5
    assert sdk.chat.completions.retrieve(other.id).input_user == "u-9"
    messages = sdk.chat.completions.messages.list(made[1].id)
    assert [(m.role, m.content, m.id) for m in messages.data] == [
        ("system", "be brief", made[1].id + "-0"), ("user", "turn 1", made[1].id + "-1")]

    rome = sdk.chat.completions.list(metadata={"trip": "rome"})
    assert [c.id for c in rome.data] == [c.id for c in made]  # oldest first, OpenAI's default order
    newest = sdk.chat.completions.list(metadata={"trip": "rome"}, order="desc", limit=2)
    assert [c.id for c in newest.data] == [made[2].id, made[1].id] and newest.has_more
    assert [c.id for c in newest.get_next_page().data] == [made[0].id]
    assert [c.id for c in sdk.chat.completions.list(model="other-chat").data] == [other.id]
    assert [c.id for c in sdk.chat.completions.list(limit=1)] == [*(c.id for c in made), other.id]

    updated = sdk.chat.completions.update(made[0].id, metadata={"trip": "paris"})
    assert updated.metadata == {"trip": "paris"} and updated.choices[0].message.content == "tiny-chat: turn 0"
    assert [c.id for c in sdk.chat.completions.list(metadata={"trip": "rome"}).data] == [made[1].id, made[2].id]
    deleted = sdk.chat.completions.delete(made[0].id)
    assert deleted.deleted and deleted.object == "chat.completion.deleted"
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.retrieve(made[0].id)
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.update(made[1].id, metadata={"k": 1})
    assert bad.value.body["param"] == "metadata.k"


def test_a_streamed_completion_is_stored_whole(served: ServedPlatform) -> None:
    sdk = _sdk(served, "/v2")
    chunks = list(sdk.chat.completions.create(model="tiny-chat", messages=HELLO, stream=True, store=True,
                                              metadata={"via": "stream"}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stored = sdk.chat.completions.retrieve(chunks[0].id)
    assert stored.choices[0].message.content == text == "tiny-chat: hello there"
    assert stored.object == "chat.completion" and stored.choices[0].finish_reason == "stop"
    assert [c.id for c in sdk.chat.completions.list(metadata={"via": "stream"}).data] == [chunks[0].id]


@pytest.mark.usefixtures("own_record_dir")
def test_the_end_user_is_in_the_ledger(served: ServedPlatform) -> None:
    sdk = _recorded_sdk(served)
    sdk.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "one"}],
                                safety_identifier="hashed-7", user="older-name")
    sdk.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "two"}], user="u-2")
    sdk.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "three"}])
    assert [r.end_user for r in ledger_mod.default_ledger().rows()] == ["hashed-7", "u-2", ""]


@pytest.mark.usefixtures("own_record_dir")
def test_a_streamed_completion_has_text_chunks_and_the_usage_last_as_the_ledger_has(served: ServedPlatform) -> None:
    sdk = _recorded_sdk(served)
    chunks = list(sdk.completions.create(model="tiny-chat", prompt="once upon a time", stream=True,
                                         stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"text_completion"} and len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "tiny-chat: once upon a time"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    *texts, last = chunks
    assert last.choices == [] and all(c.usage is None for c in texts)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (4, 5)
    quiet = list(sdk.completions.create(model="tiny-chat", prompt="a quiet one", stream=True, max_tokens=2))
    assert all(c.choices and c.usage is None for c in quiet)  # the usage chunk qfnb asked for is not passed on
    assert "".join(c.choices[0].text for c in quiet) == "tiny-chat: a"
    rows = ledger_mod.default_ledger().rows()
    assert [(r.api, r.prompt_tokens, r.completion_tokens, r.total_tokens) for r in rows] == [
        ("v2/completions", 4, 5, 9), ("v2/completions", 3, 2, 5)]


class _Endless(FakeChat):
    """Completes with a word every 5 ms, up to 2,000; counts the words it made."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.made = 0
        self.lock = threading.Lock()

    def complete(self, prompt: str, *, sampling: Sampling) -> Iterator[FakeDelta]:  # type: ignore[override]
        for i in range(2_000):
            time.sleep(0.005)
            with self.lock:
                self.made += 1
            yield FakeDelta(f" w{i}", None, prompt_tokens=1, completion_tokens=i + 1)


def test_a_client_that_leaves_a_completion_stream_stops_its_generation(served: ServedPlatform) -> None:
    engine = served.registry.engines["tiny-chat"] = _Endless("tiny-chat")
    stream = _sdk(served).completions.create(model="tiny-chat", prompt="go", stream=True)
    pieces = [next(iter(stream)).choices[0].text for _ in range(3)]
    assert all(p.startswith(" w") for p in pieces)
    stream.close()
    deadline = time.monotonic() + 5
    while True:  # the made count settles well before the 2,000 words (10 s) would end
        before = engine.made
        time.sleep(0.3)
        if engine.made == before or time.monotonic() > deadline:
            break
    assert engine.made == before < 2_000

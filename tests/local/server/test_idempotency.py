"""A retry reuses the platform's work: a model call carries an ``Idempotency-Key`` (qfnb's client
one per logical call, the same on its retries), and the platform runs it once per key and caller.
A slow engine double answers after the client's timeout: the client's connection is cut, it
retries, and the retry attaches to the call still generating (or gets the finished answer): one
engine call, the same answer, counted once. A cut stream, sent again, replays what was sent and
goes on. Another caller's key reaches nothing; the same key with another body is refused."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from platform_doubles import FakeChat, FakeDelta, FakeRegistry
from platform_helpers import client_for, wait_for

from qfnb import ChatCompletion, Completion, Embedding
from qfnb._core.config import Config
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.runtime import sync
from qfnb._core.transport import Reply, Request, StreamReply, Transport
from qfnb.errors import InvalidArgumentError, TimeoutError, ValidationError
from qfnb.local.engines.ask import Sampling
from qfnb.protocol.wires.qianfan.routes import CALLS_ROUTE, REUSED_HEADER
from tests.fakes.local_platform import ServedPlatform, served_platform

#: the slow engine's wait before its first word and between words after the second; the client's timeout
FIRST_S, PAUSE_S, TIMEOUT_S = 1.0, 0.15, 0.4


class SlowChat(FakeChat):
    """Waits ``FIRST_S`` before its first word (a queue, a long prefill); on a prompt starting
    "pause", ``PAUSE_S`` before each word after the second; "stall", ``FIRST_S`` before its third
    word (a stream that goes silent mid-answer); "quick", not at all. ``stopped``: when each
    generation was cancelled before its end (the engine's slot freed)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.stopped: list[float] = []

    def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
        if not text.startswith(("pause", "quick", "stall")):
            time.sleep(FIRST_S)
        try:
            for i, delta in enumerate(super()._words(text, sampling)):
                if text.startswith("pause") and i >= 2:
                    time.sleep(PAUSE_S)
                if text.startswith("stall") and i == 2:
                    time.sleep(FIRST_S)
                yield delta
        except GeneratorExit:
            self.stopped.append(time.monotonic())
            raise


class SlowRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return SlowChat(tag)


def _served(tmp_path: Path, **settings: Any) -> Any:
    return served_platform(tmp_path / "platform", registry=SlowRegistry(), heartbeat=0, **settings)


def _calls(served: ServedPlatform) -> int:
    engine = served.registry.engines.get("tiny-chat")  # made on its first call
    return 0 if engine is None else len(engine.calls)


def _engine(served: ServedPlatform) -> SlowChat:
    engine = served.registry.engines["tiny-chat"]
    assert isinstance(engine, SlowChat)
    return engine


def _local(served: ServedPlatform, **overrides: Any) -> Config:
    """A config for ``served`` as the client's own for the embedded platform (the client withdraws
    the calls its caller stops only there)."""
    return replace(served.config(**overrides), embedded=True)


#: a prompt the slow engine answers in about 9 s (``PAUSE_S`` a word)
LONG = "pause " + " ".join(f"w{i}" for i in range(60))


def _counted(served: ServedPlatform) -> float:
    """The model calls the platform's metrics counted."""
    meter = served.app.state.platform.meter
    return sum(s.value for m in meter.registry.collect() if m.name == "qfnb_requests"
               for s in m.samples if s.name == "qfnb_requests_total")


def _post(served: ServedPlatform, body: dict[str, Any], key: str, token: str, **kw: Any) -> httpx.Response:
    return httpx.post(served.url + "/v2/chat/completions", json=body, timeout=kw.pop("timeout", 10),
                      headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


@pytest.mark.usefixtures("own_record_dir")
def test_the_sdk_retry_after_a_timeout_gets_the_first_attempts_answer(tmp_path: Path) -> None:
    with _served(tmp_path) as served:  # a timeout is no stop of the caller's: the work is kept
        chat = ChatCompletion(model="Tiny-Chat", config=_local(served,
            llm_api_retry_timeout=TIMEOUT_S, llm_api_retry_count=5, llm_api_retry_backoff_factor=0.05,
            llm_api_retry_jitter=0.0))
        whole = chat.do(messages=[{"role": "user", "content": "slow one"}])
        assert whole.body["result"] == "tiny-chat: slow one"
        assert _calls(served) == 1  # the retries attached to the first attempt's work
        assert whole.headers.get(REUSED_HEADER) in ("attached", "stored")
        assert _counted(served) == 1
        rows = ledger_mod.default_ledger().rows()
        assert len(rows) == 1 and rows[0].completion_tokens == 3

        streamed = "".join(r.body["result"] for r in chat.do(messages=[{"role": "user", "content": "slow two"}],
                                                                stream=True))
        assert streamed == "tiny-chat: slow two" and _calls(served) == 2 and _counted(served) == 2
        assert len(ledger_mod.default_ledger().rows()) == 2 and _engine(served).stopped == []


@pytest.mark.usefixtures("own_record_dir")
def test_the_sdk_resumes_a_stream_that_went_silent_mid_answer(tmp_path: Path) -> None:
    with _served(tmp_path) as served:
        chat = ChatCompletion(model="Tiny-Chat", config=served.config(
            llm_api_retry_timeout=TIMEOUT_S, llm_api_retry_count=5, llm_api_retry_backoff_factor=0.05,
            llm_api_retry_jitter=0.0))
        chunks = [r.body["result"] for r in chat.do(messages=[{"role": "user", "content": "stall a b"}], stream=True)]
        assert "".join(chunks) == "tiny-chat: stall a b" and chunks[:2] == ["tiny-chat:", " stall"]
        assert _calls(served) == 1 and _counted(served) == 1  # resumed, not generated again
        rows = ledger_mod.default_ledger().rows()
        assert len(rows) == 1 and rows[0].completion_tokens == 4


def test_a_cut_stream_sent_again_replays_what_was_sent_and_goes_on(tmp_path: Path) -> None:
    body = {"model": "Tiny-Chat", "stream": True, "messages": [{"role": "user", "content": "pause a b c d e"}]}
    with _served(tmp_path) as served:
        token = served.bearer_token()
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "stream-1"}
        with httpx.stream("POST", served.url + "/v2/chat/completions", json=body, headers=headers,
                          timeout=10) as first:
            seen = []
            for line in first.iter_lines():
                if line.startswith("data: {"):
                    seen.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
                if len(seen) == 3:
                    break  # the connection is cut mid-answer
        again = httpx.post(served.url + "/v2/chat/completions", json=body, headers=headers, timeout=10)
        events = [json.loads(line[6:]) for line in again.text.splitlines() if line.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
        assert text == "tiny-chat: pause a b c d e" and "".join(seen) == "tiny-chat: pause"
        assert again.headers[REUSED_HEADER] == "attached" and again.text.rstrip().endswith("data: [DONE]")
        assert _calls(served) == 1

        stored = httpx.post(served.url + "/v2/chat/completions", json=body, headers=headers, timeout=10)
        assert stored.headers[REUSED_HEADER] == "stored" and stored.text == again.text and _calls(served) == 1
        assert _counted(served) == 1


def test_a_key_serves_only_its_caller_and_only_its_own_request(tmp_path: Path) -> None:
    body = {"model": "Tiny-Chat", "messages": [{"role": "user", "content": "quick mine"}]}
    with _served(tmp_path) as served:
        mine, theirs = served.bearer_token(), served.bearer_token()
        first = _post(served, body, "k-1", mine)
        assert first.json()["choices"][0]["message"]["content"] == "tiny-chat: quick mine"
        assert _post(served, body, "k-1", mine).headers[REUSED_HEADER] == "stored" and _calls(served) == 1

        other = _post(served, body, "k-1", theirs)  # another key's call under the same name: run for it
        assert REUSED_HEADER not in other.headers and _calls(served) == 2

        changed = _post(served, {**body, "messages": [{"role": "user", "content": "quick other"}]}, "k-1", mine)
        assert changed.status_code == 422 and "Idempotency-Key 'k-1'" in changed.json()["error"]["message"]
        assert _calls(served) == 2

        bad = httpx.post(served.url + "/v2/chat/completions", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {mine}", "Idempotency-Key": "x" * 300})
        assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]["message"]
        assert _calls(served) == 2


def test_the_openai_and_anthropic_sdk_retries_with_a_key_attach(tmp_path: Path) -> None:
    with _served(tmp_path) as served:
        sdk = openai.OpenAI(base_url=served.url + "/v2", api_key=served.bearer_token(), max_retries=4,
                            timeout=TIMEOUT_S)
        done = sdk.chat.completions.create(model="Tiny-Chat", messages=[{"role": "user", "content": "sdk"}],
                                           extra_headers={"Idempotency-Key": "sdk-call-1"})  # kept on its retries
        assert done.choices[0].message.content == "tiny-chat: sdk" and _calls(served) == 1
        claude = anthropic.Anthropic(base_url=served.url, api_key=served.bearer_token(), max_retries=4,
                                     timeout=TIMEOUT_S)  # x-api-key: the same caller as its bearer token
        message = claude.messages.create(model="Tiny-Chat", max_tokens=16, extra_headers={"Idempotency-Key": "c-1"},
                                         messages=[{"role": "user", "content": "claude"}])
        assert message.content[0].text == "tiny-chat: claude" and _calls(served) == 2  # type: ignore[union-attr]


def test_an_error_is_not_kept_and_a_call_nobody_waits_for_is_cancelled(tmp_path: Path) -> None:
    with _served(tmp_path, retry_grace=0.2) as served:
        token = served.bearer_token()
        missing = {"model": "No-Such-Model", "messages": [{"role": "user", "content": "x"}]}
        assert _post(served, missing, "e-1", token).status_code >= 400
        again = _post(served, missing, "e-1", token)
        assert again.status_code >= 400 and REUSED_HEADER not in again.headers  # tried again, not replayed

        body = {"model": "Tiny-Chat", "messages": [{"role": "user", "content": "slow gone"}]}
        with pytest.raises(httpx.ReadTimeout):
            _post(served, body, "g-1", token, timeout=0.3)
        time.sleep(0.4)  # past the grace: the work was cancelled and forgotten
        late = _post(served, body, "g-1", token)
        assert REUSED_HEADER not in late.headers and _calls(served) == 2


def test_without_a_retry_left_the_timeout_names_its_settings(tmp_path: Path) -> None:
    with _served(tmp_path) as served:
        chat = ChatCompletion(model="Tiny-Chat", config=served.config(
            llm_api_retry_timeout=0.2, llm_api_retry_count=2, llm_api_retry_backoff_factor=0.01,
            llm_api_retry_jitter=0.0))
        with pytest.raises(TimeoutError, match=r"2 attempts.*Idempotency-Key.*QIANFAN_LLM_API_RETRY_COUNT.*"
                                               r"QIANFAN_LLM_API_RETRY_TIMEOUT"):
            chat.do(messages=[{"role": "user", "content": "too slow"}])


@pytest.mark.usefixtures("own_record_dir")
def test_a_keyed_call_its_caller_stops_is_cancelled_on_the_platform_at_once(tmp_path: Path) -> None:
    with _served(tmp_path) as served:
        chat = ChatCompletion(model="Tiny-Chat", config=_local(served))
        # what the sync shell's Ctrl-C does: the coroutine on qfnb's loop is cancelled
        waiting = sync.submit(chat.ado(messages=[{"role": "user", "content": LONG}]))
        wait_for(lambda: _calls(served) == 1, timeout=10)
        time.sleep(PAUSE_S * 2)  # generating
        cancelled = time.monotonic()
        waiting.cancel()
        wait_for(lambda: _engine(served).stopped, timeout=5)  # not the platform's 30 s grace
        assert _engine(served).stopped[0] - cancelled < 1.5

        stream = chat.do(messages=[{"role": "user", "content": LONG}], stream=True)
        assert next(stream).body["result"] == "tiny-chat:" and next(stream).body["result"] == " pause"
        closed = time.monotonic()
        stream.close()  # the notebook's Interrupt closes a streamed answer so
        assert time.monotonic() - closed < 1.5  # the interrupt is not held up
        wait_for(lambda: len(_engine(served).stopped) == 2, timeout=5)
        assert _engine(served).stopped[1] - closed < 1.5 and _calls(served) == 2


def test_only_the_caller_that_sent_a_key_can_withdraw_it(tmp_path: Path) -> None:
    body = {"model": "Tiny-Chat", "messages": [{"role": "user", "content": LONG}]}
    with _served(tmp_path) as served:
        mine, theirs = served.bearer_token(), served.bearer_token()

        def withdraw(key: str, token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.delete(f"{served.url}{CALLS_ROUTE}/{key}", headers=headers, timeout=10)

        with pytest.raises(httpx.ReadTimeout):  # a cut connection: the work goes on for a retry
            _post(served, body, "w-1", mine, timeout=0.3)
        refused = withdraw("w-1", theirs)
        assert refused.status_code == 404 and "w-1" in refused.json()["error"]["message"]
        assert withdraw("w-1", None).status_code == 401 and withdraw("no-such", mine).status_code == 404
        time.sleep(PAUSE_S * 2)
        assert _engine(served).stopped == []  # the work goes on

        sent = time.monotonic()
        assert withdraw("w-1", mine).json() == {"key": "w-1", "state": "cancelled"}
        wait_for(lambda: _engine(served).stopped, timeout=5)
        assert _engine(served).stopped[0] - sent < 1.5
        again = _post(served, {**body, "messages": [{"role": "user", "content": "quick again"}]}, "w-2", mine)
        assert again.status_code == 200 and withdraw("w-2", mine).json() == {"key": "w-2", "state": "finished"}
        assert withdraw("w-1", mine).status_code == 404  # withdrawn: forgotten, a retry would run again


def test_a_call_given_up_on_says_what_the_platform_was_doing(tmp_path: Path) -> None:
    with _served(tmp_path) as served:
        chat = ChatCompletion(model="Tiny-Chat", config=_local(served,
            llm_api_retry_timeout=0.3, llm_api_retry_count=2, llm_api_retry_backoff_factor=0.01,
            llm_api_retry_jitter=0.0))
        with pytest.raises(TimeoutError) as raised:
            chat.do(messages=[{"role": "user", "content": LONG}])
        message = str(raised.value)
        assert "2 attempts" in message and "QIANFAN_LLM_API_RETRY_TIMEOUT" in message
        said = re.search(r"\(the platform had it generating: (\d+) tokens in (\d+) s\)$", message)
        assert said is not None, message
        assert 2 <= int(said.group(1)) < 60  # the first words came at once, then one every PAUSE_S

        with pytest.raises(TimeoutError) as streamed:  # a stream given up on before its first event
            next(iter(chat.do(messages=[{"role": "user", "content": "slow stream"}], stream=True)))
        assert re.search(r"the platform had it generating: reading its prompt for \d+ s", str(streamed.value))


def test_the_platform_says_what_a_keyed_call_is_doing_to_its_caller_only(tmp_path: Path) -> None:
    body = {"model": "Tiny-Chat", "messages": [{"role": "user", "content": LONG}]}
    with _served(tmp_path) as served:
        mine, theirs = served.bearer_token(), served.bearer_token()

        def progress(key: str, token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.get(f"{served.url}{CALLS_ROUTE}/{key}", headers=headers, timeout=10)

        with pytest.raises(httpx.ReadTimeout):  # a cut connection: the work goes on for a retry
            _post(served, body, "p-1", mine, timeout=0.3)
        time.sleep(PAUSE_S * 3)
        now = progress("p-1", mine).json()
        assert now["key"] == "p-1" and now["phase"] == "generating" and now["tokens"] >= 3
        assert now["elapsedSeconds"] >= 0.3 and now["generatingSeconds"] > 0 and now["queuedSeconds"] == 0
        assert progress("p-1", theirs).status_code == 404 and progress("p-1", None).status_code == 401
        assert progress("no-such", mine).status_code == 404
        huge = progress("k" * 20_000, mine)  # no key that long exists: not echoed whole
        assert huge.status_code == 404 and len(huge.text) < 500 and "20000 characters" in huge.text

        quick = {**body, "messages": [{"role": "user", "content": "quick one"}]}
        assert _post(served, quick, "p-2", mine).status_code == 200
        done = progress("p-2", mine).json()
        assert done["phase"] == "done" and done["tokens"] == 3  # "tiny-chat: quick one"
        assert httpx.delete(f"{served.url}{CALLS_ROUTE}/p-1", headers={"Authorization": f"Bearer {mine}"},
                            timeout=10).json()["state"] == "cancelled"


@pytest.mark.usefixtures("own_record_dir")
def test_a_key_the_caller_gives_is_sent_and_the_same_key_again_gets_the_kept_answer(tmp_path: Path) -> None:
    with _served(tmp_path) as served:
        config = _local(served)
        chat, completion, embedding = (ChatCompletion(model="Tiny-Chat", config=config),
                                       Completion(model="Tiny-Chat", config=config),
                                       Embedding(model="Tiny-Embed", config=config))
        ask = [{"role": "user", "content": "quick mine"}]
        first = chat.do(messages=ask, idempotency_key="nb-cell-7")
        again = chat.do(messages=ask, idempotency_key="nb-cell-7")
        assert REUSED_HEADER not in first.headers and again.headers.get(REUSED_HEADER) == "stored"
        assert again.body["result"] == first.body["result"] == "tiny-chat: quick mine" and _calls(served) == 1
        assert chat.do(messages=ask).body["result"] == "tiny-chat: quick mine" and _calls(served) == 2  # no key: anew

        words = [r.body["result"] for r in completion.do("quick words", stream=True, idempotency_key="c-1")]
        replayed = [r.body["result"] for r in completion.do("quick words", stream=True, idempotency_key="c-1")]
        assert replayed == words and "".join(words) == "tiny-chat: quick words" and _calls(served) == 3

        vectors = sync.run(embedding.ado(["a b", "c"], idempotency_key="e-1"))
        stored = embedding.do(["a b", "c"], idempotency_key="e-1")
        assert stored.headers.get(REUSED_HEADER) == "stored" and stored.body["data"] == vectors.body["data"]

        with pytest.raises(InvalidArgumentError, match="Idempotency-Key 'nb-cell-7' was used for another request"):
            chat.do(messages=[{"role": "user", "content": "quick other"}], idempotency_key="nb-cell-7")


class Recorder(Transport):
    """A transport that notes each request and answers a v1 chat answer."""

    def __init__(self) -> None:
        self.sent: list[Request] = []

    async def send(self, request: Request) -> Reply:
        self.sent.append(request)
        return Reply(200, {}, b'{"result": "ok", "usage": {"total_tokens": 1}}')

    async def stream(self, request: Request) -> StreamReply:
        raise AssertionError("no stream in this test")


@pytest.mark.parametrize("key, problem", [("", "must not be empty"), ("k" * 256, "at most 255 characters"),
                                          ("caf\u00e9", "printable ASCII"), ("a\nb", "printable ASCII"),
                                          (7, "must be a string")])
@pytest.mark.usefixtures("own_record_dir")
def test_a_bad_key_is_refused_before_anything_is_sent(key: Any, problem: str) -> None:
    recorder = Recorder()
    config = Config.from_env({}, base_url="http://h.test", access_token="24.tok", transport=recorder)
    hi = [{"role": "user", "content": "hi"}]
    for call in (lambda: ChatCompletion(config=config).do(messages=hi, idempotency_key=key),
                 lambda: Completion(config=config).do("hi", idempotency_key=key),
                 lambda: Embedding(config=config).do(["hi"], idempotency_key=key)):
        with pytest.raises(ValidationError, match=f"idempotency_key.*{re.escape(problem)}"):
            call()
    with pytest.raises(ValidationError, match=r"idempotency_key.*one call per input"):
        ChatCompletion(config=config).batch_do([hi], idempotency_key="b-1")
    assert recorder.sent == []
    ChatCompletion(config=config).do(messages=hi, idempotency_key="k" * 255)  # the longest: sent as given
    assert [r.headers["Idempotency-Key"] for r in recorder.sent] == ["k" * 255]


def test_an_iam_callers_key_is_owned_by_its_verified_signature_not_its_key_id(tmp_path: Path) -> None:
    """The probe: with the access key id alone (it is in every signed request's header) and no
    secret, someone could learn whether a key was in use (422) and evict the victim's call. Now an
    unverified signature never reaches the keyed calls: it is refused as the route refuses it."""
    from platform_helpers import CREDS, Signer

    from qfnb.protocol.wires.qianfan.signing import bce_date

    body = {"model": "Tiny-Chat", "messages": [{"role": "user", "content": LONG}]}
    forged = {"Authorization": f"bce-auth-v1/{CREDS.access_key}/{bce_date()}/1800/host/{'0' * 64}",
              "Idempotency-Key": "victim-1"}
    with _served(tmp_path) as served:
        with pytest.raises(httpx.ReadTimeout):  # the victim's call, cut: it goes on for its retry
            httpx.post(served.url + "/v2/chat/completions", json=body, auth=Signer(), timeout=0.3,
                       headers={"Idempotency-Key": "victim-1"})
        probe = httpx.post(served.url + "/v2/chat/completions", json={**body, "messages": []}, headers=forged,
                           timeout=10)
        assert probe.status_code == 401 and "Idempotency-Key" not in probe.text  # not 422: nothing learnt
        same = httpx.post(served.url + "/v2/chat/completions", json=body, headers=forged, timeout=10)
        assert same.status_code == 401 and REUSED_HEADER not in same.headers
        for method in ("GET", "DELETE"):
            looked = httpx.request(method, f"{served.url}{CALLS_ROUTE}/victim-1", headers=forged, timeout=10)
            assert looked.status_code == 401, looked.text
        time.sleep(PAUSE_S * 2)
        assert _engine(served).stopped == [] and _calls(served) == 1  # the victim's call goes on, alone
        state = httpx.get(f"{served.url}{CALLS_ROUTE}/victim-1", auth=Signer(), timeout=10)
        assert state.status_code == 200, state.text  # its owner, signing with the secret, finds it
        assert httpx.delete(f"{served.url}{CALLS_ROUTE}/victim-1", auth=Signer(),
                            timeout=10).json() == {"key": "victim-1", "state": "cancelled"}


@pytest.mark.parametrize("keyed", [True, False])
def test_a_model_call_whose_credential_does_not_verify_is_refused_before_its_body_is_read(
        tmp_path: Path, keyed: bool) -> None:
    """The heartbeat and keyed-calls middleware read a body of up to 8 MiB before asking whether its
    credential verified: any caller with a made-up bearer token had the platform hold 8 MiB per
    connection. The route now refuses it first, its body unread."""
    size, chunk = 8 * 1024 * 1024, b"x" * 65536
    delivered = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered >= size:
            await asyncio.sleep(3600)  # the whole body was sent: a client that stays connected
        delivered += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": delivered < size}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with client_for(tmp_path) as client:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v2/chat/completions", "raw_path": b"/v2/chat/completions",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
                 "app": client.app, "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                                                (b"content-length", str(size).encode()),
                                                (b"authorization", b"Bearer made-up"),
                                                *([(b"idempotency-key", b"k1")] if keyed else [])]}
        asyncio.run(asyncio.wait_for(client.app(scope, receive, send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 401
    assert delivered < 1024 * 1024, f"{delivered} bytes of the body were read before the credential was checked"

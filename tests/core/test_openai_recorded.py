"""``qfnb.openai_client()``'s calls on the one record (issue 43 §3): the real ``openai`` SDK over
:class:`~qfnb._core.runtime.openai_recorded.SyncRecordedTransport`, in front of a mock platform that
answers as the local one does. Each model call reserves its worst case (``n``, tools, the prompt),
is refused unsent past the budget, settles to the usage the platform counted and is in the ledger;
a stream that did not ask for usage is counted all the same, and its caller never sees the usage
chunk; a repeated call replays from the cache."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.http.recording.recorded import worst_case
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import budget
from qfnb._core.record.cache import cache_mode, set_process_mode

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

from qfnb._core.runtime.openai_recorded import SyncRecordedTransport, recorded_api  # noqa: E402

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py

PROMPT, COMPLETION = 11, 7  # what the mock platform says each answer used


class Platform:
    """Answers chat (streamed or not, ``include_usage`` honoured), Responses and Messages calls."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        if request.method == "GET":
            return httpx2.Response(200, json={"id": "m", "digest": "d1"})
        body = json.loads(request.content)
        self.sent.append(body)
        path = request.url.path
        if path.endswith("/responses"):
            usage = {"input_tokens": PROMPT, "output_tokens": COMPLETION, "total_tokens": PROMPT + COMPLETION}
            if body.get("stream"):
                done = {"type": "response.completed", "response": {"id": "r1", "usage": usage}}
                return _sse([{"type": "response.created", "response": {"id": "r1", "usage": None}}, done],
                            named=True)
            return httpx2.Response(200, json={"id": "r1", "object": "response", "output": [], "usage": usage})
        if path.endswith("/messages"):
            return httpx2.Response(200, json={"id": "m1", "type": "message", "role": "assistant", "content": [],
                                              "usage": {"input_tokens": PROMPT - 3, "cache_read_input_tokens": 3,
                                                        "output_tokens": COMPLETION}})
        usage = {"prompt_tokens": PROMPT, "completion_tokens": COMPLETION, "total_tokens": PROMPT + COMPLETION}
        if not body.get("stream"):
            return httpx2.Response(200, json={"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                                              "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                                  "role": "assistant", "content": "hi"}}], "usage": usage})
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        events = [{**chunk, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
        return _sse(events)


def _sse(events: list[dict[str, Any]], named: bool = False) -> Any:
    text = "".join((f"event: {e['type']}\n" if named else "") + f"data: {json.dumps(e)}\n\n" for e in events)
    return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                           content=(text + ("" if named else "data: [DONE]\n\n")).encode())


@pytest.fixture
def platform() -> Platform:
    return Platform()


@pytest.fixture
def sdk(platform: Platform) -> Any:
    config = Config.from_env({}, base_url="http://platform.test")
    transport = SyncRecordedTransport(config, inner=httpx2.MockTransport(platform))
    return openai.OpenAI(base_url="http://platform.test/v1", api_key="k", max_retries=0,
                         http_client=openai.DefaultHttpxClient(transport=transport))


def _rows() -> list[ledger_mod.UsageRow]:
    return ledger_mod.default_ledger().rows()


def test_model_routes_are_recorded_and_others_pass() -> None:
    assert [recorded_api(p) for p in ("/v1/chat/completions", "/v2/responses", "/v1/messages", "/v1/embeddings",
                                      "/v1/models", "/v1/files", "/v1/batches")] == [
        "v2/chat", "v2/responses", "v2/messages", "v2/embeddings", None, None, None]


def test_a_stream_without_usage_is_counted_and_its_caller_sees_no_usage_chunk(sdk: Any, platform: Platform) -> None:
    spend = budget(tokens=10_000)
    chunks = list(sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert chunks and all(c.choices for c in chunks)  # the usage chunk qfnb asked for is not passed on
    assert platform.sent[0]["stream_options"] == {"include_usage": True}
    assert platform.sent[0]["max_completion_tokens"] == 1024  # under a budget: sent with the cap it reserved
    (row,) = _rows()
    assert (row.api, row.prompt_tokens, row.completion_tokens, row.cache_hit) == ("v2/chat", PROMPT, COMPLETION, False)
    assert spend.spent_tokens == PROMPT + COMPLETION and spend.reserved_tokens == 0


def test_past_the_budget_a_call_is_refused_unsent(sdk: Any, platform: Platform) -> None:
    spend = budget(tokens=100)
    ask = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.RateLimitError, match="token budget"):  # 8 answers of 1,024: unsent
        sdk.chat.completions.create(model="m", messages=ask, n=8)
    with pytest.raises(openai.RateLimitError, match="token budget"):  # 8 x 10 fits; 12 tools' schemas do not
        tool = {"type": "function", "function": {"name": "lookup_city_weather", "description": "x" * 60,
                                                 "parameters": {"type": "object", "properties": {
                                                     "city": {"type": "string"}}}}}
        sdk.chat.completions.create(model="m", messages=ask, n=2, max_tokens=10, tools=[tool] * 12)
    assert platform.sent == [] and spend.spent_tokens == 0 and spend.reserved_tokens == 0
    sdk.chat.completions.create(model="m", messages=ask, max_tokens=10)  # about 50 at most: sent
    assert len(platform.sent) == 1 and spend.spent_tokens == PROMPT + COMPLETION <= 100


def test_responses_and_messages_are_counted_under_their_own_names(sdk: Any) -> None:
    sdk.responses.create(model="m", input="hi", max_output_tokens=16)
    list(sdk.responses.create(model="m", input="hi", max_output_tokens=16, stream=True))
    sdk.post("/messages", cast_to=object, body={"model": "m", "max_tokens": 16,
                                                "messages": [{"role": "user", "content": "hi"}]})
    rows = _rows()
    assert [(r.api, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        ("v2/responses", PROMPT, COMPLETION), ("v2/responses", PROMPT, COMPLETION), ("v2/messages", PROMPT, COMPLETION)]


@pytest.fixture
def cache_on() -> Any:
    previous = set_process_mode("on")  # as %load_ext qfnb does
    yield
    set_process_mode(previous)


@pytest.mark.usefixtures("cache_on")
def test_a_repeated_call_replays_from_the_cache_and_fresh_asks_again(sdk: Any, platform: Platform) -> None:
    ask = [{"role": "user", "content": "hi"}]
    first = sdk.chat.completions.create(model="m", messages=ask, max_tokens=10)
    again = sdk.chat.completions.create(model="m", messages=ask, max_tokens=10)
    streamed = list(sdk.chat.completions.create(model="m", messages=ask, max_tokens=10, stream=True))
    replayed = list(sdk.chat.completions.create(model="m", messages=ask, max_tokens=10, stream=True))
    assert again.choices[0].message.content == first.choices[0].message.content and len(platform.sent) == 2
    assert [c.choices[0].delta.content for c in replayed] == [c.choices[0].delta.content for c in streamed]
    with cache_mode("refresh"):  # the caller's context reaches qfnb's loop: --fresh asks again
        sdk.chat.completions.create(model="m", messages=ask, max_tokens=10)
    assert len(platform.sent) == 3
    assert [r.cache_hit for r in _rows()] == [False, True, False, True, False]


def test_a_call_that_asks_to_be_stored_always_reaches_the_platform(sdk: Any, platform: Platform) -> None:
    ask = [{"role": "user", "content": "keep me"}]
    for _ in range(2):
        sdk.chat.completions.create(model="m", messages=ask, max_tokens=10, store=True, safety_identifier="u-3")
    assert len(platform.sent) == 2 and all(b["store"] is True for b in platform.sent)
    assert [(r.cache_hit, r.end_user) for r in _rows()] == [(False, "u-3"), (False, "u-3")]


class Batches:
    """Answers OpenAI's files + batches as the local platform does: the uploaded file ``file-1``'s
    rows, and one batch ``infer-b1`` whose ``status`` the test moves on."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.status, self.created, self.reads = rows, "in_progress", 0, 0

    def batch(self) -> dict[str, Any]:
        return {"id": "infer-b1", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "file-1",
                "completion_window": "24h", "status": self.status, "created_at": 100, "in_progress_at": 101,
                "completed_at": 131 if self.status == "completed" else None,
                "request_counts": {"total": len(self.rows), "completed": len(self.rows), "failed": 0},
                "usage": {"input_tokens": 40, "output_tokens": 25, "total_tokens": 65}}

    def __call__(self, request: Any) -> Any:
        path = request.url.path
        if path.endswith("/content"):
            if path != "/v1/files/file-1/content":
                error = {"message": "No such File object", "type": "invalid_request_error", "code": "not_found"}
                return httpx2.Response(404, json={"error": error})
            return httpx2.Response(200, content="".join(json.dumps(r) + "\n" for r in self.rows).encode())
        if request.method == "POST" and path.endswith("/batches"):
            self.created += 1
        elif request.method == "GET":
            self.reads += 1
        if path.endswith("/batches") and request.method == "GET":
            return httpx2.Response(200, json={"object": "list", "data": [self.batch()], "has_more": False})
        return httpx2.Response(200, json=self.batch())


def _row(i: int, **body: Any) -> dict[str, Any]:
    return {"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}], **body}}


def _batch_sdk(double: Batches, watch_first_s: float = 3600.0) -> Any:
    config = Config.from_env({}, base_url="http://platform.test")
    transport = SyncRecordedTransport(config, inner=httpx2.MockTransport(double), watch_first_s=watch_first_s)
    return openai.OpenAI(base_url="http://platform.test/v1", api_key="k", max_retries=0,
                         http_client=openai.DefaultHttpxClient(transport=transport))


def _create(sdk: Any, file_id: str = "file-1") -> Any:
    return sdk.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
#: a row with its own cap, one without (the platform's 1,024), one with n=2 answers of 20 and a tool
ROWS = [_row(0, max_tokens=10), _row(1), _row(2, n=2, max_completion_tokens=20, tools=[TOOL])]


def test_a_batch_holds_its_rows_worst_case_and_settles_once_when_a_reader_sees_it_end() -> None:
    spend, double = budget(tokens=10_000), Batches(ROWS)
    sdk = _batch_sdk(double)
    made = _create(sdk)
    worst = sum(worst_case(r["body"], "v2/chat") for r in ROWS)
    assert worst > 1024 + 2 * 20 + 10 and made.status == "in_progress" and double.created == 1
    assert (spend.reserved_tokens, spend.spent_tokens, _rows()) == (worst, 0, [])  # held while it runs
    double.status = "completed"
    assert sdk.batches.retrieve("infer-b1").usage.total_tokens == 65
    assert [b.id for b in sdk.batches.list()] == ["infer-b1"]
    assert (spend.reserved_tokens, spend.spent_tokens) == (0, 65)  # settled once to its usage
    (row,) = _rows()
    assert (row.api, row.model, row.total_tokens, row.job) == ("batch-job", "m", 65, "batch-job infer-b1")


def test_a_batch_past_the_budget_is_refused_before_it_is_created_naming_the_figures() -> None:
    spend, double = budget(tokens=1_000), Batches(ROWS)
    sdk = _batch_sdk(double)
    worst = sum(worst_case(r["body"], "v2/chat") for r in ROWS)
    with pytest.raises(openai.RateLimitError, match=rf"token budget: 0 of 1,000 used .* the OpenAI batch of "
                                                    rf"file-1 \(3 rows\) may use up to {worst:,}"):
        _create(sdk)
    with pytest.raises(openai.NotFoundError):  # a file the platform does not have: its own answer
        _create(sdk, "file-2")
    assert double.created == 0 and (spend.reserved_tokens, spend.spent_tokens) == (0, 0)
    budget(tokens=worst)  # exactly its worst case fits
    assert _create(sdk).id == "infer-b1" and double.created == 1


def _until(done: Any, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_transport_watches_a_batch_it_made_and_settles_it_when_no_one_reads_it() -> None:
    spend, double = budget(tokens=10_000), Batches(ROWS)
    _create(_batch_sdk(double, watch_first_s=0.01))
    assert spend.reserved_tokens > 0
    double.status = "completed"  # the client never reads it again
    _until(lambda: spend.reserved_tokens == 0)
    reads = double.reads
    assert spend.spent_tokens == 65 and len(_rows()) == 1
    time.sleep(0.1)
    assert double.reads == reads  # the watch ended with the batch


def test_an_ended_batch_goes_to_the_ledger_once_without_a_budget() -> None:
    double = Batches(ROWS)
    sdk = _batch_sdk(double)
    made = _create(sdk)
    assert made.status == "in_progress" and _rows() == []  # not ended: nothing to count yet
    assert double.reads == 0  # without a budget its file is not read
    double.status = "completed"
    assert sdk.batches.retrieve("infer-b1").usage.total_tokens == 65  # the answer reaches the caller whole
    sdk.batches.retrieve("infer-b1")
    assert [b.id for b in sdk.batches.list()] == ["infer-b1"]
    (row,) = _rows()  # once, however often it is read
    assert (row.api, row.prompt_tokens, row.completion_tokens, row.total_tokens) == ("batch-job", 40, 25, 65)
    assert row.latency_s == 30.0 and row.job == "batch-job infer-b1" and not row.cache_hit


def test_without_a_budget_the_watch_puts_an_ended_batch_in_the_ledger_unread() -> None:
    double = Batches(ROWS)
    _create(_batch_sdk(double, watch_first_s=0.01))
    double.status = "completed"
    _until(lambda: len(_rows()) == 1)
    assert _rows()[0].total_tokens == 65


def test_a_refused_connection_revives_the_daemon_and_is_sent_once_more() -> None:
    """The daemon killed under ``qfnb.openai_client()``: its calls failed with a connection error for
    good (nothing started the daemon again, as qfnb's own calls do); now a refused connection asks the
    daemon back once and the call goes on. A refused connection sent nothing: the call reaches the
    platform once."""
    from qfnb._core.runtime.openai_recorded import Reviving

    platform, asked = Platform(), []
    down = [True]

    def platform_or_refused(request: Any) -> Any:
        if down[0]:
            raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)
        return platform(request)

    def revive(origin: str) -> bool:
        asked.append(origin)
        down[0] = False
        return True

    config = Config.from_env({}, base_url="http://127.0.0.1:8123")
    transport = SyncRecordedTransport(config, Reviving(httpx2.MockTransport(platform_or_refused), revive))
    client = openai.OpenAI(base_url="http://127.0.0.1:8123/v1", api_key="k", max_retries=0,
                           http_client=openai.DefaultHttpxClient(transport=transport))
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "hi" and asked == ["http://127.0.0.1:8123"]
    assert len(platform.sent) == 1

    down[0] = True
    transport.recorded.inner = Reviving(httpx2.MockTransport(platform_or_refused), lambda origin: False)
    with pytest.raises(openai.APIConnectionError):  # no daemon of this process there: the SDK's own error
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert len(platform.sent) == 1

"""The send pipeline's stages, each alone with a scripted ``next``, and a client built from a subset."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import (
    AccessTokenExpiredError,
    APIError,
    ConnectionError,
    InvalidArgumentError,
    RequestError,
    ServerOverloadedError,
    StreamError,
    TimeoutError,
)
from qfnb._core.http.auth import Auth
from qfnb._core.http.call import Call
from qfnb._core.http.client import AsyncQianfanClient
from qfnb._core.http.outage import Outages
from qfnb._core.http.ratelimit import RateLimiter
from qfnb._core.http.recording.recorded import Recording
from qfnb._core.http.response import QfRequest, QfResponse
from qfnb._core.http.retry import RetryPolicy
from qfnb._core.http.stages import Answer, Next, compose, withdraw
from qfnb._core.http.stages.auth import Authenticate
from qfnb._core.http.stages.limit import RateLimit
from qfnb._core.http.stages.outage import Outage
from qfnb._core.http.stages.record import Record
from qfnb._core.http.stages.retry import Retry
from qfnb._core.http.stages.revive import Revive
from qfnb._core.http.stages.send import Send
from qfnb._core.http.stages.withdraw import Withdraw
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import BudgetExceeded, budget
from qfnb._core.transport import Reply, Request, StreamReply, Transport
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, Target

URL = "http://h.test/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/m"
FAST = RetryPolicy(attempts=3, timeout=7.0, backoff_factor=0.5, jitter=0.0)


def _call(**kw: Any) -> Call:
    return Call("POST", URL, {"messages": [{"role": "user", "content": "hi"}]}, {"Content-Type": "application/json"},
                None, "infer", policy=kw.pop("policy", FAST), **kw)


def _ok(body: dict[str, Any] | None = None) -> QfResponse:
    return QfResponse(200, {}, body or {"result": "ok", "usage": {"total_tokens": 3}}, QfRequest("POST", "/x"))


class Script:
    """A ``next`` that raises or answers from a list, and counts its calls."""

    def __init__(self, *outcomes: BaseException | QfResponse) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self, call: Call) -> Answer:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_compose_runs_stages_in_order_and_a_stage_may_answer_itself() -> None:
    seen: list[str] = []

    def marker(name: str, answer: bool = False) -> Any:
        async def stage(call: Call, next: Next) -> Answer:
            seen.append(name)
            return _ok({"by": name}) if answer else await next(call)
        return stage

    handler = compose([marker("a"), marker("b")], Script(_ok({"by": "end"})))
    assert (await handler(_call())).body == {"by": "end"} and seen == ["a", "b"]
    seen.clear()
    end = Script(_ok())
    answered = await compose([marker("a"), marker("b", answer=True), marker("c")], end)(_call())
    assert isinstance(answered, QfResponse) and answered.body == {"by": "b"}
    assert seen == ["a", "b"] and end.calls == 0


# ---------------------------------------------------------------------------- record
@pytest.mark.usefixtures("own_record_dir")
async def test_record_passes_console_calls_and_reserves_then_settles_model_calls() -> None:
    end = Script(_ok())
    await Record()(_call(), end)  # no record: nothing counted
    assert end.calls == 1 and ledger_mod.default_ledger().rows() == []
    spend = budget(tokens=1000)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_output_tokens": 10}
    rec = Recording.begin(Config.from_env({}, base_url="http://h.test"), "chat", "m", body, stream=False)

    async def check_held(call: Call) -> Answer:
        assert spend.reserved_tokens > 10  # the worst case is held while the call is in flight
        return _ok({"result": "ok", "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}})

    await Record()(_call(record=rec), check_held)
    assert (spend.spent_tokens, spend.reserved_tokens) == (3, 0)
    assert [r.total_tokens for r in ledger_mod.default_ledger().rows()] == [3]
    failing = Recording.begin(Config.from_env({}, base_url="http://h.test"), "chat", "m", body, stream=False)
    with pytest.raises(ServerOverloadedError):
        await Record()(_call(record=failing), Script(ServerOverloadedError(336100, "busy")))
    assert (spend.spent_tokens, spend.reserved_tokens) == (3, 0)  # a failure gives its reservation back
    budget(tokens=5)
    refused = Script(_ok())
    with pytest.raises(BudgetExceeded, match="may use up to"):
        await Record()(_call(record=Recording.begin(Config.from_env({}, base_url="http://h.test"), "chat", "m", body,
                                                  stream=False)), refused)
    assert refused.calls == 0


# ---------------------------------------------------------------------------- retry
async def test_retry_waits_by_the_policy_and_counts_attempts() -> None:
    clock = Clock()
    end = Script(ServerOverloadedError(336100, "busy"), ServerOverloadedError(336100, "busy"), _ok())
    call = _call()
    assert isinstance(await Retry(FAST, clock.sleep)(call, end), QfResponse)
    assert end.calls == 3 and call.attempt == 3 and clock.slept == [0.5, 1.0]
    gave_up = Script(*[ServerOverloadedError(336100, "busy")] * 3)
    with pytest.raises(ServerOverloadedError) as spent:
        await Retry(FAST, clock.sleep)(_call(), gave_up)
    assert gave_up.calls == 3  # the server's error, and a note of what the tries came to
    (note,) = spent.value.__notes__
    assert re.fullmatch(r"gave up after 3 attempts in \d+\.\d s; QIANFAN_LLM_API_RETRY_COUNT sets the attempts", note)
    silent = Script(*[TimeoutError("no byte for 7 s")] * 3)
    with pytest.raises(TimeoutError, match=r"^no byte for 7 s -- gave up after 3 attempts in .* "
                                           r"QIANFAN_LLM_API_RETRY_TIMEOUT the silence each one waits$"):
        await Retry(FAST, clock.sleep)(_call(), silent)
    once = Script(InvalidArgumentError(336003, "bad"))
    with pytest.raises(InvalidArgumentError):
        await Retry(FAST, clock.sleep)(_call(), once)
    assert once.calls == 1


# ---------------------------------------------------------------------------- revive
async def test_revive_brings_the_daemon_back_once_per_call() -> None:
    origins: list[str] = []

    def revive(origin: str) -> bool:
        origins.append(origin)
        return True

    outages = Outages()
    outages.refused(URL)
    end = Script(ConnectionError("refused"), _ok())
    assert isinstance(await Revive(revive, outages)(_call(), end), QfResponse)
    assert origins == ["http://h.test"] and end.calls == 2 and not outages.down(URL)
    twice = Script(ConnectionError("refused"), ConnectionError("refused"))
    call = _call()
    with pytest.raises(ConnectionError):
        await Revive(revive, outages)(call, twice)
    with pytest.raises(ConnectionError):  # the same call again (a retry): no second revive
        await Revive(revive, outages)(call, Script(ConnectionError("refused")))
    assert len(origins) == 2
    with pytest.raises(TimeoutError):  # a timeout is no dead daemon
        await Revive(revive, outages)(_call(), Script(TimeoutError("slow")))
    assert len(origins) == 2


# ---------------------------------------------------------------------------- outage
async def test_outage_makes_calls_wait_out_a_refusing_server_and_an_answer_ends_it() -> None:
    clock = Clock()
    outages = Outages(clock)
    stage = Outage(outages, clock.sleep)
    with pytest.raises(ConnectionError):
        await stage(_call(), Script(ConnectionError("refused")))
    assert outages.down(URL) and clock.slept == []
    await stage(_call(), Script(_ok()))
    assert clock.slept and sum(clock.slept) == pytest.approx(0.25) and not outages.down(URL)
    with pytest.raises(TimeoutError):  # a timeout says the server is there
        await stage(_call(), Script(TimeoutError("slow")))
    assert not outages.down(URL)


# ---------------------------------------------------------------------------- limit
async def test_limit_spaces_calls_learns_a_services_limits_and_settles_tokens() -> None:
    clock = Clock()
    servers: dict[str, RateLimiter | None] = {}
    stage = RateLimit(RateLimiter(qps=2, clock=clock), servers, clock.sleep, clock)

    async def advertise(call: Call) -> Answer:
        call.reply_headers = {"x-ratelimit-limit-requests": "600", "x-ratelimit-limit-tokens": "60000"}
        return _ok()

    for _ in range(3):
        await stage(_call(tokens=40), advertise)
    assert sum(clock.slept) == pytest.approx(1.0)  # 2 per second: three starts span one second
    server = servers[URL]
    assert server is not None and server.limits_tokens
    with pytest.raises(APIError):
        await stage(_call(tokens=40), Script(APIError(336502, "tpm exceeded")))
    assert server.reserve(1) > 0  # the TPM refusal drained the service's token window


# ---------------------------------------------------------------------------- auth
class Token(Auth):
    def __init__(self) -> None:
        self.issued = 0

    async def apply(self, call: Call) -> tuple[dict[str, str], str, str | None]:
        self.issued += 1
        return {**call.headers, "X-Token": f"t{self.issued}"}, f"access_token=t{self.issued}", f"t{self.issued}"

    def rejected(self, token: str) -> bool:
        return True


async def test_auth_signs_each_attempt_and_refreshes_a_rejected_token_once() -> None:
    token = Token()
    sent: list[tuple[str, str]] = []

    async def end(call: Call) -> Answer:
        sent.append((call.sent_headers["X-Token"], call.query))
        if len(sent) < 2:
            raise AccessTokenExpiredError(111, "expired")
        return _ok()

    await Authenticate(lambda api: token)(_call(), end)
    assert sent == [("t1", "access_token=t1"), ("t2", "access_token=t2")]
    with pytest.raises(AccessTokenExpiredError):  # rejected again right after a refresh: reported
        await Authenticate(lambda api: token)(_call(), Script(*[AccessTokenExpiredError(111, "expired")] * 2))


# ---------------------------------------------------------------------------- send + a client from a subset
class Answers(Transport):
    """Answers every request with ``reply`` and keeps the requests."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Reply:
        self.requests.append(request)
        return self.reply

    async def stream(self, request: Request) -> StreamReply:
        reply = await self.send(request)

        async def body() -> AsyncIterator[bytes]:
            yield reply.content

        return StreamReply(reply.status_code, reply.headers, body())


async def test_send_puts_the_attempts_auth_on_the_wire_with_the_policys_timeout() -> None:
    transport = Answers(Reply(200, {"X-Ratelimit-Limit-Requests": "60"}, b'{"result": "ok"}'))
    call = _call()
    call.sent_headers, call.query = {"Authorization": "x"}, "a=1"
    resp = await Send(lambda: transport, RetryPolicy())(call)
    (request,) = transport.requests
    assert isinstance(resp, QfResponse) and resp.body["result"] == "ok"
    assert (request.url, request.headers, request.timeout) == (URL + "?a=1", {"Authorization": "x"}, 7.0)
    assert call.reply_headers is not None and call.reply_headers["X-Ratelimit-Limit-Requests"] == "60"


@pytest.mark.usefixtures("own_record_dir")
async def test_a_client_from_auth_alone_signs_and_neither_retries_nor_records() -> None:
    transport = Answers(Reply(503, {}, b'{"error_code": 336100, "error_msg": "busy"}'))
    cfg = Config.from_env({}, base_url="http://h.test", access_token="24.tok")
    client = AsyncQianfanClient(cfg, transport=transport, stages=lambda c: [Authenticate(c.auth_for)])
    budget(tokens=1)  # no record stage: the budget is not consulted
    with pytest.raises(ServerOverloadedError):
        await client.infer(Target("chat", "m"), {"messages": [{"role": "user", "content": "hi"}]})
    (request,) = transport.requests  # no retry stage: one try
    assert request.url.endswith("/chat/m?access_token=24.tok")
    assert ledger_mod.default_ledger().rows() == []
    transport.reply = Reply(200, {}, b'{"result": "ok"}')
    bare = AsyncQianfanClient(cfg, transport=transport, stages=lambda c: [])  # the transport alone
    resp = await bare.infer(Target("chat", "m"), {"messages": [{"role": "user", "content": "hi"}]})
    assert isinstance(resp, QfResponse) and "access_token" not in transport.requests[-1].url


# ---------------------------------------------------------------------------- withdraw
class Platform:
    """A ``next`` for the withdraw stage: a keyed POST hangs (a call generating) or streams
    ``chunks``; a DELETE answers at once, or hangs with ``deaf``. Notes each call."""

    def __init__(self, *, chunks: int = 0, deaf: bool = False, last: dict[str, Any] | None = None,
                 fails: BaseException | None = None, cut: bool = False,
                 progress: dict[str, Any] | None = None) -> None:
        self.chunks, self.deaf, self.last, self.fails, self.cut = chunks, deaf, last, fails, cut
        self.progress = progress  # the answer to GET (None: 404)
        self.sent: list[Call] = []
        self.posted = asyncio.Event()

    async def __call__(self, call: Call) -> Answer:
        self.sent.append(call)
        if call.method in ("DELETE", "GET"):
            if self.deaf:
                await asyncio.Event().wait()
            if call.method == "DELETE":
                return _ok({"state": "cancelled"})
            if self.progress is None:
                raise RequestError("no call under that key", status_code=404)
            return _ok(self.progress)
        self.posted.set()
        if self.fails is not None:
            raise self.fails
        if not self.chunks:
            await asyncio.Event().wait()
        return self._stream()

    async def _stream(self) -> AsyncIterator[QfResponse]:
        for i in range(self.chunks):
            yield _ok({"result": str(i)})
        if self.cut:
            error = StreamError("the stream was cut")
            error.cut = True
            raise error
        if self.last is not None:
            yield _ok(self.last)
            await asyncio.Event().wait()  # the platform still finishing its books

    @property
    def deletes(self) -> list[str]:
        return [f"{c.api} {c.url}" for c in self.sent if c.method == "DELETE"]


async def _read(platform: Platform) -> list[Call]:
    stream = await Withdraw()(_keyed(), platform)
    assert not isinstance(stream, QfResponse)
    assert [c.body async for c in stream] == [{"result": "0"}]
    return platform.sent[1:]


def _keyed(key: str = "qfnb-k1", **kw: Any) -> Call:
    call = _call(**kw)
    call.headers[IDEMPOTENCY_HEADER] = key
    return call


async def test_withdraw_cancels_a_keyed_call_its_caller_stops_and_never_hangs_on_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    platform = Platform()
    task = asyncio.ensure_future(Withdraw()(_keyed("qfnb-a/1"), platform))
    await platform.posted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert platform.deletes == ["infer http://h.test/qfnb/calls/qfnb-a%2F1"]  # the call's own credential kind
    assert platform.sent[-1].policy is not None and platform.sent[-1].policy.attempts == 1

    monkeypatch.setattr(withdraw, "WITHDRAW_WAIT_S", 0.2)  # the wait's bound, shorter for the test
    deaf = Platform(deaf=True)  # a platform that does not answer: the stop waits at most WITHDRAW_WAIT_S
    task = asyncio.ensure_future(Withdraw()(_keyed(), deaf))
    await deaf.posted.wait()
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deaf.deletes) == 1 and 0.2 <= time.monotonic() - started < 0.2 + 0.5


async def test_withdraw_cancels_a_stream_closed_early_but_not_one_read_whole_or_a_failed_call() -> None:
    platform = Platform(chunks=5)
    stream = await Withdraw()(_keyed(), platform)
    assert not isinstance(stream, QfResponse)
    assert (await stream.__anext__()).body == {"result": "0"}
    await stream.aclose()  # type: ignore[attr-defined]  # the notebook's Interrupt closes it so
    assert len(platform.deletes) == 1

    whole = Platform(chunks=3)
    stream = await Withdraw()(_keyed(), whole)
    assert not isinstance(stream, QfResponse) and len([c async for c in stream]) == 3 and whole.deletes == []
    ended = Platform(chunks=3, last={"result": "", "is_end": True})
    stream = await Withdraw()(_keyed(), ended)
    assert not isinstance(stream, QfResponse)
    assert [(await stream.__anext__()).body.get("is_end") for _ in range(4)] == [None, None, None, True]
    await stream.aclose()  # type: ignore[attr-defined]  # closed after its final chunk: nothing to withdraw
    assert ended.deletes == []

    timed_out = Platform(fails=TimeoutError("silent"))
    with pytest.raises(TimeoutError):  # a cut or silent connection: the platform keeps the work for a retry
        await Withdraw()(_keyed(), timed_out)
    assert timed_out.deletes == [] and [c.method for c in timed_out.sent] == ["POST", "GET"]  # asked, not stopped


async def test_a_keyed_call_given_up_on_says_what_the_platform_was_doing(monkeypatch: pytest.MonkeyPatch) -> None:
    doing = {"key": "qfnb-k1", "phase": "generating", "elapsedSeconds": 135.2, "loadingSeconds": 0.0,
             "queuedSeconds": 40.1, "generatingSeconds": 95.1, "tokens": 212}
    platform = Platform(fails=TimeoutError("no byte for 300 s -- gave up after 3 attempts"), progress=doing)
    with pytest.raises(TimeoutError) as raised:
        await Withdraw()(_keyed("qfnb-a/1"), platform)
    assert str(raised.value) == ("no byte for 300 s -- gave up after 3 attempts (the platform had it generating: "
                                 "212 tokens in 95 s after 40 s queued)")
    assert [f"{c.method} {c.url}" for c in platform.sent[1:]] == ["GET http://h.test/qfnb/calls/qfnb-a%2F1"]
    assert platform.sent[1].api == "infer" and platform.sent[1].policy is not None
    assert platform.sent[1].policy.attempts == 1  # one try, under the call's own credential kind

    cut = Platform(chunks=2, cut=True, progress={**doing, "phase": "done", "elapsedSeconds": 9.6, "tokens": 30})
    stream = await Withdraw()(_keyed(), cut)
    assert not isinstance(stream, QfResponse)
    with pytest.raises(StreamError, match=r"cut \(the platform had it done: 30 tokens in 10 s after 40 s queued\)$"):
        async for _ in stream:
            pass

    unknown = Platform(fails=ConnectionError("reset"), progress=None)
    with pytest.raises(ConnectionError, match=r"^reset \(the platform holds no call under its key"):
        await Withdraw()(_keyed(), unknown)

    monkeypatch.setattr(withdraw, "WITHDRAW_WAIT_S", 0.2)  # the wait's bound, shorter for the test
    deaf = Platform(fails=TimeoutError("silent"), deaf=True)  # asked at most WITHDRAW_WAIT_S, never an error
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^silent$"):
        await Withdraw()(_keyed(), deaf)
    assert time.monotonic() - started < 0.2 + 0.5
    assert await _read(Platform(chunks=1)) == []  # nothing asked of a call that did not fail


def test_only_a_client_of_the_local_platform_withdraws() -> None:
    cloud = Config.from_env({}, base_url="http://h.test", access_token="24.tok")
    assert not any(isinstance(s, Withdraw) for s in AsyncQianfanClient(cloud).default_stages())
    local = AsyncQianfanClient(replace(cloud, embedded=True)).default_stages()
    assert [type(s).__name__ for s in local[:4]] == ["Record", "TrainRecord", "Withdraw", "Retry"]


def test_revive_lets_a_dying_daemon_exit_before_it_starts_another(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """A SIGKILLed daemon is not gone at once (on a loaded machine its process outlives the refused
    connection): revive waits for it to exit rather than take it for the running daemon."""
    import subprocess
    import sys

    from qfnb._core.backend import daemon, heal
    from qfnb._core.backend.discovery import LocalPlatform

    dying = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"])
    root = tmp_path.resolve()
    old = LocalPlatform("http://127.0.0.1:9", "k", "s", "a", "i", root, dying.pid, "x")
    new = LocalPlatform("http://127.0.0.1:9", "k", "s", "a", "i", root, dying.pid + 1, "x")
    seen: list[bool] = []

    def ensure(data_dir: Path, serve_args: tuple[str, ...] = ()) -> LocalPlatform:
        seen.append(dying.poll() is not None)  # the old process had exited by the start
        assert daemon._known.get(root) is None, "the dying daemon was still taken for the running one"
        daemon._known[root] = new
        return new

    monkeypatch.setattr(daemon, "ensure_daemon", ensure)
    monkeypatch.setitem(daemon._known, root, old)
    try:
        assert heal.revive("http://127.0.0.1:9/") is True
    finally:
        dying.kill()
        dying.wait()
    assert seen == [True] and daemon._known[root] is new

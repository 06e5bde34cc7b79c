"""A test double of the Qianfan cloud protocol (v1 inference, OAuth, v2 chat, IAM, console).

A small ASGI app (no framework) with:

* built-in handlers for OAuth ``/oauth/2.0/token``, v1 ``chat/completions/embeddings/
  text2image/plugin``, v2 ``/v2/chat/completions``, ``/v1/BCE-BEARER/token`` and
  ``service/list``; answers are deterministic echoes (this is a double, not a model);
* real credential checks: access tokens it issued, bce-auth-v1 signatures verified with
  :func:`qfnb.protocol.wires.qianfan.signing.verify`, bearer tokens;
* handler registration for anything else: ``@fake.route("POST", "/v2/finetuning",
  action="DescribeFineTuningTask")`` (handlers get a :class:`Captured` and return a
  ``dict`` body, or a :class:`Reply`);
* request capture (``fake.requests``), and fault injection: ``fake.fail_next(n, kind)``,
  ``fake.fault_rate(p, kinds)``, ``fake.latency``, ``fake.expire_tokens()``,
  ``fake.cut_stream_after``.

Serve it with :func:`serve` (uvicorn on 127.0.0.1, a free port, in a daemon thread), or call it
in-process with ``qfnb._core.transport.asgi.ASGITransport(fake)`` (see :mod:`tests.fakes.fixtures`).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from qfnb.protocol.wires.codec.sse import encode_event
from qfnb.protocol.wires.qianfan.signing import SignatureError, verify

from .serving import serve as serve  # tests import it from here

Handler = Callable[["Captured"], "dict[str, Any] | Reply | Awaitable[dict[str, Any] | Reply]"]

PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop"


@dataclass
class Captured:
    """One request as the fake saw it."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names
    raw: bytes
    time: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.raw) if self.raw else None
        except ValueError:
            return None


@dataclass
class Reply:
    """A custom answer: a JSON body (or raw bytes), status and headers."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[dict[str, Any] | str] | None = None  # stream these events instead


@dataclass
class Fault:
    """``kind``: ``"500"``/``"429"``/``"503"`` (HTTP), ``"code:336100"`` (v1 body error),
    ``"drop"`` (connection closed mid-response), ``"111"``/``"110"`` (token errors)."""

    kind: str
    path: str | None = None
    retry_after: str | None = None


class FakeQianfan:
    """The fake platform. See the module docstring."""

    def __init__(self, *, ak: str = "test_ak", sk: str = "test_sk", access_key: str = "test_access_key",
                 secret_key: str = "test_secret_key", bearer_token: str = "bce-v3/ALTAK-test/secret",
                 verify_signatures: bool = True) -> None:
        self.ak, self.sk = ak, sk
        self.access_key, self.secret_key = access_key, secret_key
        self.bearer_tokens = {bearer_token}
        self.verify_signatures = verify_signatures
        self.base_url = ""  # set by the fixtures once served
        self.transport: Any = None  # an in-process transport to it, when the fixtures made one
        self.requests: list[Captured] = []
        self.capture = True
        self.latency = 0.0
        self.cut_stream_after: int | None = None
        self.stream_chunks = 3
        #: the next N chat answers say ``is_truncated`` (as when the output hit the length limit)
        self.truncate_next = 0
        #: extra headers on every inference answer (e.g. ``X-Ratelimit-Limit-Requests``)
        self.inference_headers: dict[str, str] = {}
        self._tokens: set[str] = set()
        self._token_seq = 0
        self._faults: list[Fault] = []
        self._fault_rate: tuple[float, tuple[str, ...], random.Random] | None = None
        self._fault_retry_after: str | None = None
        self._quota: tuple[float, str] | None = None
        self._quota_window: list[float] = []
        self._routes: dict[tuple[str, str, str | None], Handler] = {}
        self._lock = threading.Lock()
        self.services: dict[str, list[dict[str, Any]]] = {"common": [], "custom": []}
        self._install_defaults()

    # ------------------------------------------------------------------ configuration
    def route(self, method: str, path: str, action: str | None = None) -> Callable[[Handler], Handler]:
        """Register a handler for ``method path`` (and ``?Action=`` for v2 console)."""

        def deco(fn: Handler) -> Handler:
            self._routes[(method.upper(), path, action)] = fn
            return fn

        return deco

    def fail_next(self, n: int, kind: str = "500", *, path: str | None = None,
                  retry_after: str | None = None) -> None:
        """The next ``n`` matching requests get fault ``kind``."""
        with self._lock:
            self._faults.extend(Fault(kind, path, retry_after) for _ in range(n))

    def fault_rate(self, p: float, kinds: tuple[str, ...] = ("500",), seed: int = 0,
                   retry_after: str | None = None) -> None:
        """Each request fails with probability ``p`` (a random kind from ``kinds``; a 429
        carries ``Retry-After: retry_after``)."""
        self._fault_rate = (p, kinds, random.Random(seed)) if p else None
        self._fault_retry_after = retry_after

    def admit_per_second(self, rate: float | None, kind: str = "code:18") -> None:
        """A quota: inference calls beyond ``rate`` in any one-second window get fault ``kind``
        (the platform's QPS-limit code 18 by default); None lifts it."""
        self._quota = (rate, kind) if rate else None
        self._quota_window: list[float] = []

    def expire_tokens(self) -> None:
        """Every access token issued so far now answers 111 (expired)."""
        self._tokens.clear()

    def calls(self, path_part: str = "") -> list[Captured]:
        return [r for r in self.requests if path_part in r.path]

    def env(self, base_url: str, mode: str = "oauth") -> dict[str, str]:
        """Config kwargs pointing a client at this fake (``mode``: oauth | iam | both)."""
        out = {"base_url": base_url, "console_api_base_url": base_url, "iam_base_url": base_url}
        if mode in ("oauth", "both"):
            out.update(ak=self.ak, sk=self.sk)
        if mode in ("iam", "both"):
            out.update(access_key=self.access_key, secret_key=self.secret_key)
        return out

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        req = await _captured(scope, receive)
        if self.capture:
            with self._lock:
                self.requests.append(req)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(req)
        if fault is not None:
            await self._fault(fault, send)
            return
        try:
            reply = await self._dispatch(req)
        except SignatureError as exc:
            reply = Reply({"requestId": "fake", "code": "AccessDenied", "message": str(exc)}, 403,
                          {"x-bce-error-code": "SignatureDoesNotMatch", "x-bce-error-message": str(exc)})
        await self._send(reply, send)

    def _take_fault(self, req: Captured) -> Fault | None:
        if req.path == "/oauth/2.0/token":
            return None
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path is None or fault.path in req.path:
                    return self._faults.pop(i)
            if self._quota is not None and "/chat/" in req.path:
                rate, kind = self._quota
                now = time.monotonic()
                self._quota_window = [t for t in self._quota_window if now - t < 1.0]
                if len(self._quota_window) >= rate:
                    return Fault(kind)
                self._quota_window.append(now)
            if self._fault_rate is not None:
                p, kinds, rng = self._fault_rate
                if rng.random() < p:
                    kind = rng.choice(kinds)
                    return Fault(kind, retry_after=self._fault_retry_after if kind == "429" else None)
        return None

    async def _fault(self, fault: Fault, send: Any) -> None:
        kind = fault.kind
        extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
        if kind == "drop":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"500")]})
            await send({"type": "http.response.body", "body": b'{"id": "partial', "more_body": True})
            raise ConnectionAbortedError("fake: dropping the connection")
        if kind.startswith("code:") or kind in ("110", "111"):
            code = int(kind.split(":")[-1])
            await self._send(Reply({"error_code": code, "error_msg": f"fake fault {code}"}, 200, extra), send)
            return
        await self._send(Reply({"error_code": 336100 if kind == "503" else 1, "error_msg": f"fake HTTP {kind}"}
                               if kind != "429" else None, int(kind), extra), send)

    async def _send(self, reply: Reply, send: Any) -> None:
        headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.sse is not None:
            headers.append((b"content-type", b"text/event-stream"))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            for i, event in enumerate(reply.sse):
                if self.cut_stream_after is not None and i >= self.cut_stream_after:
                    raise ConnectionAbortedError("fake: cutting the stream")
                data = event.encode() if isinstance(event, str) else encode_event(event)
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = b"" if reply.body is None else json.dumps(reply.body, ensure_ascii=False).encode()
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _dispatch(self, req: Captured) -> Reply:
        action = req.params.get("Action")
        handler = self._routes.get((req.method, req.path, action)) or self._routes.get((req.method, req.path, None))
        if handler is None:
            for (method, path, act), fn in self._routes.items():
                if method == req.method and path.endswith("*") and req.path.startswith(path[:-1]) and (
                        act is None or act == action):
                    handler = fn
                    break
        if handler is None:
            return Reply({"error_code": 336005, "error_msg": f"fake: no route {req.method} {req.path}"}, 404)
        out = handler(req)
        if asyncio.iscoroutine(out):
            out = await out
        return out if isinstance(out, Reply) else Reply(out)

    # ------------------------------------------------------------------ auth checks
    def check_iam(self, req: Captured) -> None:
        """Raise SignatureError unless ``req`` is correctly bce-auth-v1 signed."""
        if self.verify_signatures:
            verify(req.method, req.path, req.params, req.headers, {self.access_key: self.secret_key}.get)
        elif "authorization" not in req.headers:
            raise SignatureError("missing Authorization header")

    def _inference_auth(self, req: Captured) -> dict[str, Any] | None:
        token = req.params.get("access_token")
        if token is not None:
            if token in self._tokens:
                return None
            return {"error_code": 111, "error_msg": "Access token expired"}
        if "authorization" in req.headers:
            self.check_iam(req)
            return None
        return {"error_code": 110, "error_msg": "Access token invalid or no longer valid"}

    # ------------------------------------------------------------------ built-in routes
    def _install_defaults(self) -> None:
        self.route("POST", "/oauth/2.0/token")(self._oauth)
        self.route("GET", "/v1/BCE-BEARER/token")(self._bearer)
        self.route("POST", "/v2/chat/completions")(self._chat_v2)
        self.route("POST", "/wenxinworkshop/service/list")(self._service_list)
        for api in ("chat", "completions", "embeddings", "text2image", "plugin"):
            self.route("POST", f"{PREFIX}/{api}/*")(self._inference)
        self.route("POST", f"{PREFIX}/erniebot/*")(self._inference)

    def _oauth(self, req: Captured) -> dict[str, Any]:
        if req.params.get("client_id") != self.ak:
            return {"error": "invalid_client", "error_description": "unknown client id"}
        if req.params.get("client_secret") != self.sk:
            return {"error": "invalid_client", "error_description": "Client authentication failed"}
        with self._lock:
            self._token_seq += 1
            token = f"24.fake{self._token_seq:04d}.2592000"
            self._tokens.add(token)
        return {"access_token": token, "expires_in": 2592000, "scope": "fake"}

    def _bearer(self, req: Captured) -> dict[str, Any]:
        self.check_iam(req)
        token = f"bce-v3/ALTAK-minted/{len(self.bearer_tokens)}"
        self.bearer_tokens.add(token)
        return {"userId": "u", "token": token, "status": "enable", "createTime": "2024-01-01T00:00:00Z",
                "expireTime": "2099-01-01T00:00:00Z"}

    def _service_list(self, req: Captured) -> dict[str, Any]:
        self.check_iam(req)
        return {"log_id": "fake", "result": self.services}

    async def _inference(self, req: Captured) -> Reply:
        err = self._inference_auth(req)
        if err is not None:
            return Reply(err)
        body = req.json or {}
        api, _, endpoint = req.path[len(PREFIX) + 1:].partition("/")
        if api == "embeddings":
            texts = body.get("input") or []
            data = [{"object": "embedding", "embedding": [float(len(t)), 1.0, 0.5], "index": i}
                    for i, t in enumerate(texts)]
            return Reply({"id": "as-fake", "object": "embedding_list", "created": 1, "data": data,
                          "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})
        if api == "text2image":
            import base64

            img = base64.b64encode(b"\x89PNG fake " + body.get("prompt", "").encode()).decode()
            return Reply({"id": "as-fake", "object": "image", "created": 1,
                          "data": [{"object": "image", "b64_image": img, "index": i}
                                   for i in range(int(body.get("n", 1)))],
                          "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        if "messages" in body:
            text = str(body["messages"][-1].get("content", ""))
        else:
            text = str(body.get("prompt") or body.get("query") or "")
        answer = f"echo[{endpoint.strip('/')}]: {text}"
        obj = "completion" if api == "completions" else "chat.completion"
        usage = {"prompt_tokens": len(text), "completion_tokens": len(answer), "total_tokens": len(text) + len(answer)}
        truncated = False
        if obj == "chat.completion" and self.truncate_next > 0:
            self.truncate_next -= 1
            truncated = True
        if body.get("stream"):
            n = max(1, self.stream_chunks)
            size = -(-len(answer) // n)
            parts = [answer[i * size:(i + 1) * size] for i in range(n)]
            events: list[dict[str, Any] | str] = [
                {"id": "as-fake", "object": obj, "created": 1, "sentence_id": i, "is_end": i == n - 1,
                 "result": part, "is_truncated": truncated and i == n - 1, "need_clear_history": False,
                 "usage": usage}
                for i, part in enumerate(parts)]
            return Reply(sse=events, headers=dict(self.inference_headers))
        return Reply({"id": "as-fake", "object": obj, "created": 1, "result": answer, "is_truncated": truncated,
                      "need_clear_history": False, "usage": usage},
                     headers={"x-baidu-request-id": req.headers.get("request_id", ""), **self.inference_headers})

    def _chat_v2(self, req: Captured) -> Reply:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.bearer_tokens:
            return Reply({"error": {"code": "invalid_iam_token", "message": "IAM Certification failed"},
                          "id": "as-fake"}, 401)
        body = req.json or {}
        text = str((body.get("messages") or [{}])[-1].get("content", ""))
        answer = f"echo[{body.get('model')}]: {text}"
        if body.get("stream"):
            events: list[dict[str, Any] | str] = [
                {"id": "as-fake", "object": "chat.completion.chunk", "created": 1, "model": body.get("model"),
                 "choices": [{"index": 0, "delta": {"content": answer[:5]}}]},
                {"id": "as-fake", "object": "chat.completion.chunk", "created": 1, "model": body.get("model"),
                 "choices": [{"index": 0, "delta": {"content": answer[5:]}, "finish_reason": "stop"}]}]
            if (body.get("stream_options") or {}).get("include_usage"):  # a last chunk of its own, as OpenAI's
                events.append({"id": "as-fake", "object": "chat.completion.chunk", "created": 1,
                               "model": body.get("model"), "choices": [],
                               "usage": {"prompt_tokens": len(text), "completion_tokens": len(answer),
                                         "total_tokens": len(text) + len(answer)}})
            events.append("data: [DONE]\n\n")
            return Reply(sse=events)
        return Reply({"id": "as-fake", "object": "chat.completion", "created": 1, "model": body.get("model"),
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                   "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})


async def _lifespan(receive: Any, send: Any) -> None:
    """Answer the ASGI lifespan messages until shutdown."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _captured(scope: dict[str, Any], receive: Any) -> Captured:
    """The HTTP request ``scope`` opens, its body read whole."""
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    params = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
    return Captured(scope["method"], scope["path"], params, headers, body)

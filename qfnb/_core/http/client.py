"""``AsyncQianfanClient``: the one async client per :class:`Config`.

A call goes through the client's send pipeline (:mod:`qfnb._core.http.stages`): record (cache,
budget, ledger), withdraw (a stopped call, on the local platform), retry, revive (the local
daemon), outage, rate limits, auth, then one :class:`~qfnb._core.transport.Transport` (aiohttp's
pool by default, one per event loop; or the one injected with ``transport=``) and the decoder
(:mod:`qfnb._core.http.decode`). The client holds the state those stages share (tokens,
limiters, outages); the sync API reaches it through :mod:`qfnb._core.runtime.sync`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Literal, overload
from urllib.parse import quote, urlencode

from qfnb._core.backend.heal import revive
from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import AuthError, QfnbError, RequestError
from qfnb._core.http.auth import (
    Auth,
    BearerAuth,
    SharedToken,
    console_auth,
    credential_report,
    inference_auth,
    parse_oauth_response,
)
from qfnb._core.http.call import ApiKind, Call
from qfnb._core.http.outage import Outages
from qfnb._core.http.ratelimit import RateLimiter
from qfnb._core.http.recording.recorded import (
    UNRECORDED,
    Recording,
    conversation_tokens,
    with_output_cap,
    with_usage_chunk,
)
from qfnb._core.http.response import QfResponse
from qfnb._core.http.retry import RetryPolicy
from qfnb._core.http.stages import Answer, Next, Stage, compose
from qfnb._core.http.stages.auth import Authenticate
from qfnb._core.http.stages.limit import RateLimit
from qfnb._core.http.stages.outage import Outage
from qfnb._core.http.stages.record import Record
from qfnb._core.http.stages.retry import Retry
from qfnb._core.http.stages.revive import Revive
from qfnb._core.http.stages.send import Send
from qfnb._core.http.stages.train import TrainRecord
from qfnb._core.http.stages.withdraw import Withdraw
from qfnb._core.record.budget import check_unreserved_batch
from qfnb._core.record.cache import mode_for
from qfnb._core.transport import Request, Transport, json_or_none
from qfnb._core.transport.urls import last_part, url_of
from qfnb.protocol.version import REQUEST_SOURCE
from qfnb.protocol.wires.qianfan import batch as batch_wire
from qfnb.protocol.wires.qianfan import routes
from qfnb.protocol.wires.qianfan.routes import Target

__all__ = ["AsyncQianfanClient", "default_transport", "get_client"]

logger = logging.getLogger("qfnb.client")

_JSON = "application/json"
_ONE_TRY = RetryPolicy(attempts=1, timeout=10.0)
_SERVICE_LIST_TTL = 3600.0


#: set while a batch's workers run (``run_batch``): their calls to the local platform carry
#: ``X-Qfnb-Priority: batch``, so interactive calls go first on its engines
batch_traffic: ContextVar[bool] = ContextVar("qfnb_batch_traffic", default=False)
PRIORITY_HEADER = "X-Qfnb-Priority"


def new_request_id() -> str:
    """A request's id (``qfnb-`` and 16 hex digits): unique, not secret, so drawn from :mod:`random` (a
    batch sends thousands a second; ``secrets`` reads the OS's random source for each)."""
    return f"qfnb-{random.getrandbits(64):016x}"


class _Keys:
    """``Idempotency-Key`` s, one a logical call: this process's secret prefix (128 bits from the OS's random
    source, drawn again in a forked child, so no two processes share it) and a count. Unguessable, as a kept
    answer is found by its key, and unique; one read of the random source a process, not one a call (it
    took 23 µs a call on a 2-core Xeon, about a fifteenth of a batch row's client CPU)."""

    def __init__(self) -> None:
        self.fresh()

    def fresh(self) -> None:
        self.prefix, self.numbers = "qfnb-" + secrets.token_hex(16), itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self.numbers):x}"


_new_key = _Keys()
os.register_at_fork(after_in_child=_new_key.fresh)


class AsyncQianfanClient:
    """The async client for one configuration. Get the shared one with :func:`get_client`;
    ``transport`` (default: ``config.transport``, else aiohttp's) is what sends the requests;
    ``clock`` and ``sleep`` are what rate limits and retry waits read and wait on (tests inject fakes);
    ``stages(client)`` gives the pipeline's stages, outermost first, in front of the transport
    (default: :meth:`default_stages`; a test may build a client from a subset)."""

    def __init__(self, config: Config, *, transport: Transport | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 stages: Callable[[AsyncQianfanClient], Sequence[Stage]] | None = None) -> None:
        self.config = config
        self._transport = transport or config.transport
        self._transport_lock = threading.Lock()
        self.clock = clock
        self.sleep = sleep
        self.limiter = RateLimiter(config.qps_limit, config.rpm_limit, config.tpm_limit, clock=clock)
        #: per service URL: a limiter from the limits its answers advertise (None: none advertised)
        self.server_limits: dict[str, RateLimiter | None] = {}
        self._oauth = SharedToken(self._fetch_oauth_token)
        if config.access_token:
            self._oauth.set(config.access_token)
        self._bearer = SharedToken(self._fetch_bearer_token, skew=10.0)
        if config.bearer_token:
            self._bearer.set(config.bearer_token)
        self._auths: dict[ApiKind, Auth] = {}
        self._services: tuple[float, dict[str, Any]] | None = None
        #: origins refusing connections: every call to them waits out one shared, growing window
        self.outages = Outages(clock)
        self._infer_policy = RetryPolicy.inference(config)
        self._console_policy = RetryPolicy.console(config)
        self._send: Next = compose((stages or AsyncQianfanClient.default_stages)(self),
                                   Send(lambda: self.transport, self._infer_policy))

    def default_stages(self) -> list[Stage]:
        """The full pipeline, outermost first: record, train (a fine-tune run's hold and settling), withdraw
        and retry, revive (withdraw and revive on the embedded platform only), outage, limit, auth (the
        transport comes after them)."""
        embedded = self.config.embedded
        withdraw_stage: list[Stage] = [Withdraw()] if embedded else []
        revive_stage: list[Stage] = [Revive(revive, self.outages)] if embedded else []
        return [Record(self.served_digest, self.stored_conversation), TrainRecord(self.config), *withdraw_stage,
                Retry(self._infer_policy, self.sleep), *revive_stage, Outage(self.outages, self.sleep),
                RateLimit(self.limiter, self.server_limits, self.sleep, self.clock), Authenticate(self.auth_for)]

    def __repr__(self) -> str:
        return f"AsyncQianfanClient({self.config!r})"

    @property
    def transport(self) -> Transport:
        """What sends this client's requests (made on first use: HTTP libraries import then)."""
        transport = self._transport
        if transport is None:
            with self._transport_lock:
                if self._transport is None:
                    self._transport = default_transport(self.config)
                transport = self._transport
        return transport

    async def aclose(self) -> None:
        """Close the connections this event loop opened."""
        if self._transport is not None:
            await self._transport.aclose()

    # ------------------------------------------------------------------ auth
    def auth_for(self, api: ApiKind) -> Auth:
        """The strategy for ``api`` calls (chosen on first use: it may raise AuthError)."""
        auth = self._auths.get(api)
        if auth is None:
            if api == "infer":
                auth = inference_auth(self.config, self._oauth)
            elif api == "v2":
                auth = BearerAuth(self._bearer, self.config.app_id)
            else:
                auth = console_auth(self.config)
            self._auths[api] = auth
        return auth

    async def access_token(self) -> str:
        """The OAuth access token v1 inference calls carry (minted from AK/SK on first use)."""
        return await self._oauth.get()

    async def _fetch_oauth_token(self) -> tuple[str, float | None]:
        cfg = self.config
        if not (cfg.ak and cfg.sk):
            raise AuthError("the access token was rejected and no QIANFAN_AK/QIANFAN_SK is set to mint a new one")
        query = urlencode({"grant_type": "client_credentials", "client_id": cfg.ak, "client_secret": cfg.sk})
        request = Request("POST", f"{url_of(cfg.base_url, routes.OAUTH_TOKEN)}?{query}", {"Content-Type": _JSON},
                          b"{}", cfg.auth_timeout)
        reply = await self.transport.send(request)
        body = json_or_none(reply.content)
        if reply.status_code >= 400 and not (isinstance(body, dict) and "error" in body):
            raise AuthError(f"OAuth token request failed with HTTP {reply.status_code}")
        token, expires = parse_oauth_response(body, cfg)
        logger.debug("fetched an OAuth access token (expires in %s s)", expires)
        return token, expires

    async def _fetch_bearer_token(self) -> tuple[str, float | None]:
        cfg = self.config
        if not (cfg.access_key and cfg.secret_key):
            raise AuthError("v2 calls need a v2 API key, or IAM keys to mint one; neither is set. "
                            + credential_report(cfg))
        url = url_of(cfg.iam_base_url, routes.BEARER_TOKEN)
        params = {"expireInSeconds": str(cfg.bearer_token_expired_interval)}
        resp = await self.signed_request("GET", url, params=params, content=b"{}", retry=self._console_policy)
        token = resp.body.get("token")
        if not token:
            raise AuthError("the IAM bearer-token endpoint answered without a token")
        return str(token), float(cfg.bearer_token_expired_interval)

    # ------------------------------------------------------------------ public API
    @overload
    async def infer(self, target: Target, body: dict[str, Any], *, stream: Literal[False] = False,
                    retry: RetryPolicy | None = None, request_id: str | None = None,
                    tokens: int = 0, repeat: int = 0, idempotency_key: str | None = None) -> QfResponse: ...
    @overload
    async def infer(self, target: Target, body: dict[str, Any], *, stream: bool,
                    retry: RetryPolicy | None = None, request_id: str | None = None,
                    tokens: int = 0, repeat: int = 0, idempotency_key: str | None = None) -> Answer: ...
    async def infer(self, target: Target, body: dict[str, Any], *, stream: bool = False,
                    retry: RetryPolicy | None = None, request_id: str | None = None,
                    tokens: int = 0, repeat: int = 0, idempotency_key: str | None = None) -> Answer:
        """POST a v1 inference call to ``target`` (its :attr:`~qfnb.protocol.wires.qianfan.routes.Target.path`
        below the model API prefix); QfResponse or async iterator. Recorded: the usage ledger, the
        budget, ``resp.provenance``; with the config's ``cache`` on, identical requests
        (``repeat``: an evaluation's repeat index) answer from the cache. ``idempotency_key``: the
        caller's key for the call (checked by the caller), else a new one."""
        cfg = self.config
        return await self._recorded("custom" if target.verbatim else target.api_type, target.endpoint,
                                    url_of(cfg.base_url, cfg.model_api_prefix + target.path), body,
                                    stream=stream, retry=retry, request_id=request_id, tokens=tokens, repeat=repeat,
                                    named=target.model or "", idempotency_key=idempotency_key)

    async def _recorded(self, kind: str, name: str, url: str, body: dict[str, Any], *, stream: bool,
                        retry: RetryPolicy | None, request_id: str | None, tokens: int = 0, repeat: int = 0,
                        via: Literal["infer", "v2"] = "infer", named: str = "",
                        idempotency_key: str | None = None) -> Answer:
        """POST a model call to ``url``, recorded (:mod:`qfnb._core.http.recording.recorded`): answered from the
        cache on a hit."""
        body, hide_usage = _sent_body(kind, body, stream)
        # one key per logical call, the same on its retries: the local platform reuses a retried call's work
        headers = {"Content-Type": _JSON, "Request_id": request_id or new_request_id(),
                   routes.IDEMPOTENCY_HEADER: idempotency_key or _new_key(), **self._lane()}
        record = None if kind in UNRECORDED else Recording.begin(self.config, kind, name, body, stream=stream,
                                                                 repeat=repeat, named=named)
        call = Call("POST", url, body, headers, None, via, stream, policy=retry, tokens=tokens, record=record)
        answer = await self._send(call)
        return _without_usage_chunk(answer) if hide_usage and not isinstance(answer, QfResponse) else answer

    async def replays(self, target: Target | None, body: dict[str, Any], *, stream: bool = False,
                      repeat: int = 0) -> bool:
        """Whether the response cache would answer this call now (``target``: an :meth:`infer` call's;
        None: a :meth:`chat_v2` call's), its key made as the call would make it; nothing is sent,
        nothing counted. A forecast counts such an answer as no call."""
        if target is None:
            kind, name, named = "v2/chat", str(body.get("model") or ""), ""
        else:
            kind, name, named = "custom" if target.verbatim else target.api_type, target.endpoint, target.model or ""
        if kind in UNRECORDED:
            return False
        sent, _ = _sent_body(kind, body, stream)
        rec = Recording.begin(self.config, kind, name, sent, stream=stream, repeat=repeat, named=named)
        if mode_for(self.config.cache) != "on":
            return False
        return rec.lookup(await self.served_digest(rec))

    async def served_digest(self, rec: Recording) -> str | None:
        """What would answer ``rec`` on the embedded platform: its served model's digest
        (``GET /v2/models/{name}``, asked on every cached call: ``qfnb models rm/add``, ``--engine``
        and alias changes in another process show at once; a local round trip of about a millisecond,
        against a replayed answer); "" on the cloud (it names its models itself); None when the
        platform could not tell (the call neither reads nor stores)."""
        if not self.config.embedded:
            return ""
        key = (rec.api.removeprefix("v2/"), rec.target.lower())  # v2/chat asks what serves chat
        url = url_of(self.config.base_url, f"/v2/models/{quote(rec.target, safe='')}")
        try:
            resp = await self.signed_request("GET", url, params={"api_type": key[0]}, retry=_ONE_TRY)
        except QfnbError as exc:
            logger.debug("could not tell what serves %s (%s): not cached", rec.target, exc)
            return None
        return str(resp.body.get("digest") or "")

    async def stored_conversation(self, rec: Recording) -> int:
        """The tokens of the stored conversation ``rec`` continues (its ``previous_response_id``,
        read from the platform: ``GET /v2/responses/{id}``); 0 when the platform has no such response
        (it refuses the call itself, generating nothing)."""
        previous = rec.continues
        if previous is None:
            return 0
        try:
            stored = await self.responses_v2("GET", "/" + quote(previous, safe=""))
        except RequestError as exc:
            if exc.status_code == 404:
                return 0
            raise
        assert isinstance(stored, QfResponse)
        return conversation_tokens(stored.body, previous)

    def _lane(self) -> dict[str, str]:
        """The priority header of a batch's call to the local platform (none otherwise)."""
        return {PRIORITY_HEADER: "batch"} if self.config.embedded and batch_traffic.get() else {}

    def needs_token_estimates(self) -> bool:
        """Whether a call should pass its estimated ``tokens`` (a TPM limit is in force)."""
        return self.limiter.limits_tokens or any(s is not None and s.limits_tokens
                                                 for s in self.server_limits.values())

    async def chat_v2(self, body: dict[str, Any], *, stream: bool = False, retry: RetryPolicy | None = None,
                      request_id: str | None = None, repeat: int = 0, idempotency_key: str | None = None) -> Answer:
        """POST the OpenAI-style v2 chat (bearer auth); recorded as :meth:`infer` is (route ``v2/chat``)."""
        cfg = self.config
        return await self._recorded("v2/chat", str(body.get("model") or ""),
                                    url_of(cfg.console_api_base_url, cfg.chat_v2_api_route), body,
                                    stream=stream, retry=retry, request_id=request_id, repeat=repeat, via="v2",
                                    idempotency_key=idempotency_key)

    async def infer_v2(self, route: str, body: dict[str, Any], *, retry: RetryPolicy | None = None,
                       idempotency_key: str | None = None) -> QfResponse:
        """POST an OpenAI-style v2 call other than chat (``/v2/embeddings``, ``/v2/rerankers``; bearer
        auth), recorded as :meth:`chat_v2` is (route ``v2/<last part of route>``)."""
        result = await self._recorded("v2/" + last_part(route), str(body.get("model") or ""),
                                    url_of(self.config.console_api_base_url, route), body, stream=False,
                                    retry=retry, request_id=None, via="v2", idempotency_key=idempotency_key)
        assert isinstance(result, QfResponse)  # never a stream
        return result

    async def responses_v2(self, method: str, path: str = "", body: dict[str, Any] | None = None, *,
                           stream: bool = False, params: dict[str, Any] | None = None,
                           idempotency_key: str | None = None) -> Answer:
        """The stateful Responses API (``/v2/responses`` + ``path``; bearer auth): a ``POST`` with no
        ``path`` creates a response and is recorded as :meth:`chat_v2` is (route ``v2/responses``);
        ``GET``/``DELETE`` of ``/{id}`` (``/input_items``) read or delete a stored one."""
        url = url_of(self.config.console_api_base_url, "/v2/responses" + path)
        if method == "POST" and not path:
            return await self._recorded("v2/responses", str((body or {}).get("model") or ""), url, body or {},
                                        stream=stream, retry=None, request_id=None, via="v2",
                                        idempotency_key=idempotency_key)
        headers = {"Content-Type": _JSON, "Request_id": new_request_id()}
        call = Call(method, url, body, headers, params, "v2", False, policy=self._console_policy)
        result = await self._send(call)
        assert isinstance(result, QfResponse)
        return result

    async def v2_api(self, method: str, path: str, body: dict[str, Any] | bytes | None = None, *,
                     params: dict[str, Any] | None = None, content_type: str = _JSON, octets: bool = False,
                     retry: RetryPolicy | None = None) -> QfResponse:
        """A v2 call that is not a model call (``/v2/files``, ``/v2/batches``: bearer auth, through the
        whole pipeline, unrecorded): ``body`` a JSON object, or bytes of ``content_type`` (a multipart
        upload); with ``octets`` a 2xx answer is a file's content, ``{"_raw": text, "_bytes": content}``."""
        url = url_of(self.config.console_api_base_url, path)
        headers = {"Content-Type": content_type, "Request_id": new_request_id()}
        if routes.runs_once_per_key(path, method=method):  # a batch made: once, however often it is sent
            headers[routes.IDEMPOTENCY_HEADER] = _new_key()
        call = Call(method, url, body, headers, params, "v2", False, policy=retry or self._console_policy,
                    octets=octets)
        result = await self._send(call)
        assert isinstance(result, QfResponse)  # never a stream
        return result

    async def console(self, path: str, body: dict[str, Any] | None = None, *, params: dict[str, Any] | None = None,
                      retry: RetryPolicy | None = None, method: str = "POST",
                      headers: Mapping[str, str] | None = None) -> QfResponse:
        """A bce-auth-v1 signed console call to ``{console_api_base_url}{path}`` (``headers``: extra ones)."""
        # a unique signed header: two calls never share a signature (the local platform refuses a
        # signature seen before on a call that changes state)
        headers = {"Content-Type": _JSON, "request-source": REQUEST_SOURCE, "x-bce-request-id": str(uuid.uuid4()),
                   **(headers or {})}
        if routes.runs_once_per_key(path, (params or {}).get("Action"), method):  # a create or an import:
            headers.setdefault(routes.IDEMPOTENCY_HEADER, _new_key())  # one key a call, kept on its retries
        if (params or {}).get("Action") == batch_wire.CREATE:  # its rows are unseen: no budget can hold it
            check_unreserved_batch()
        url = url_of(self.config.console_api_base_url, path)
        call = Call(method, url, body if body is not None else {}, headers, params, "console", False,
                    policy=retry or self._console_policy)
        try:
            result = await self._send(call)
            assert isinstance(result, QfResponse)
        finally:
            if routes.changes_service_list(path, (params or {}).get("Action")):
                self.invalidate_services()
        return result

    async def console_v2(self, route: str, action: str, body: dict[str, Any] | None = None, *,
                         retry: RetryPolicy | None = None, headers: Mapping[str, str] | None = None) -> QfResponse:
        """``POST /v2/<domain>?Action=<action>``."""
        return await self.console(route, body, params={"Action": action}, retry=retry, headers=headers)

    async def signed_request(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                             content: bytes | dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                             retry: RetryPolicy | None = None) -> QfResponse:
        """Any bce-auth-v1 signed request to a full URL (BOS uploads, IAM). Non-JSON bodies are kept
        as ``{"_raw": text, "_bytes": content}``."""
        hdrs = {"Content-Type": _JSON if not isinstance(content, bytes) else "application/octet-stream",
                "x-bce-request-id": str(uuid.uuid4()), **(headers or {})}
        call = Call(method, url, content, hdrs, params, "raw", False, policy=retry or self._console_policy)
        result = await self._send(call)
        assert isinstance(result, QfResponse)
        return result

    async def list_services(self, *, refresh: bool = False) -> dict[str, Any]:
        """``service/list`` (the platform's dynamic model list), cached for an hour.

        Deploying, publishing or deleting through this client drops the cache; ``refresh``
        fetches the list again whatever the cache holds (a lookup that missed does that once).
        """
        cached = self._services
        if not refresh and cached is not None and time.monotonic() - cached[0] < _SERVICE_LIST_TTL:
            return cached[1]
        resp = await self.console(routes.Console.SERVICE_LIST, {})
        result = resp.body.get("result") or {}
        self._services = (time.monotonic(), result)
        return result

    def invalidate_services(self) -> None:
        """Forget the cached ``service/list``: the next lookup fetches it again."""
        self._services = None

    def cached_services(self) -> dict[str, Any] | None:
        return self._services[1] if self._services is not None else None


async def _without_usage_chunk(chunks: AsyncIterator[QfResponse]) -> AsyncIterator[QfResponse]:
    """A v2 stream without the usage chunk qfnb asked for (``choices`` empty), as the caller asked it."""
    try:
        async for chunk in chunks:
            if chunk.body.get("choices") == [] and "usage" in chunk.body:
                continue
            yield chunk
    finally:  # a caller that stops early closes the recorded stream now: what arrived is counted
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def default_transport(config: Config) -> Transport:
    """A new transport for ``config``: httpx's when a proxy is set, else aiohttp's."""
    pool = max(1, config.max_connections)
    if not config.proxy:
        # deferred: loads aiohttp (`qfnb.ChatCompletion` does not)
        from qfnb._core.transport.aiohttp import AiohttpTransport

        return AiohttpTransport(max_connections=pool, verify=config.ssl_verification_enabled)
    from qfnb._core.transport.httpx import HttpxTransport  # deferred: loads httpx (`qfnb.ChatCompletion` does not)

    return HttpxTransport(max_connections=pool, verify=config.ssl_verification_enabled,
                          proxy=config.proxy or None)


_CLIENTS: dict[tuple[Any, ...], AsyncQianfanClient] = {}
_CLIENTS_LOCK = threading.Lock()


def get_client(config: Config | None = None) -> AsyncQianfanClient:
    """The shared client for ``config`` (resolved from the environment if None)."""
    cfg = resolve_config(config)
    key = cfg.credential_fingerprint()
    client = _CLIENTS.get(key)
    if client is None:
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = AsyncQianfanClient(cfg)
                _CLIENTS[key] = client
    return client


def _sent_body(kind: str, body: dict[str, Any], stream: bool) -> tuple[dict[str, Any], bool]:
    """The body a recorded call sends (its stream flag, output cap and usage chunk), and whether the
    usage chunk was added here (then it is kept from the caller)."""
    if stream and not body.get("stream"):
        body = {**body, "stream": True}
    body = with_output_cap(kind, body)
    return with_usage_chunk(body) if stream and kind == "v2/chat" else (body, False)

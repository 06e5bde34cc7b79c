"""``AsyncQianfanClient``: the one async client per :class:`Config`.

It sends through one :class:`~qfnb._core.transport.Transport` (aiohttp's pool by default,
one per event loop; or the one injected with ``transport=``), authenticates each call with
its API kind's strategy (:mod:`qfnb._core.http.auth`), applies rate limits, retries transient
failures with backoff and decodes answers (:mod:`qfnb._core.http.decode`); the sync API reaches
it through :mod:`qfnb._core.runtime.sync`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from qfnb._core.backend.heal import revive
from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import (
    AccessTokenExpiredError,
    APIError,
    AuthError,
    ConnectionError,
    QfnbError,
    RequestError,
    TimeoutError,
)
from qfnb._core.http.auth import (
    Auth,
    BearerAuth,
    SharedToken,
    console_auth,
    inference_auth,
    parse_oauth_response,
)
from qfnb._core.http.call import ApiKind, Call
from qfnb._core.http.decode import decode_reply, open_stream
from qfnb._core.http.outage import Outages, origin
from qfnb._core.http.ratelimit import RateLimiter
from qfnb._core.http.recorded import Recording
from qfnb._core.http.response import QfResponse
from qfnb._core.http.retry import RetryPolicy, retry_delay
from qfnb._core.transport import Request, Transport
from qfnb.protocol import routes
from qfnb.protocol.version import REQUEST_SOURCE

__all__ = ["AsyncQianfanClient", "default_transport", "get_client"]

logger = logging.getLogger("qfnb.client")

_JSON = "application/json"
_SERVICE_LIST_TTL = 3600.0


#: set while a batch's workers run (``run_batch``): their calls to the local platform carry
#: ``X-Qfnb-Priority: batch``, so interactive calls go first on its engines
batch_traffic: ContextVar[bool] = ContextVar("qfnb_batch_traffic", default=False)
PRIORITY_HEADER = "X-Qfnb-Priority"


@dataclass(slots=True)
class _Tries:
    """How far one call's retries went: the attempt that failed, the one-off recoveries used."""

    attempt: int = 1
    refreshed: bool = False
    revived: bool = False


def new_request_id() -> str:
    return "qfnb-" + secrets.token_hex(8)


class AsyncQianfanClient:
    """The async client for one configuration. Get the shared one with :func:`get_client`;
    ``transport`` (default: ``config.transport``, else aiohttp's) is what sends the requests;
    ``clock`` and ``sleep`` are what rate limits and retry waits read and wait on (tests inject fakes)."""

    def __init__(self, config: Config, *, transport: Transport | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
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
    def _auth(self, api: ApiKind) -> Auth:
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
        request = Request("POST", f"{cfg.base_url.rstrip('/')}{routes.OAUTH_TOKEN}?{query}", {"Content-Type": _JSON},
                          b"{}", cfg.auth_timeout)
        reply = await self.transport.send(request)
        try:
            body = json.loads(reply.content)
        except ValueError:
            body = None
        if reply.status_code >= 400 and not (isinstance(body, dict) and "error" in body):
            raise AuthError(f"OAuth token request failed with HTTP {reply.status_code}")
        token, expires = parse_oauth_response(body, cfg)
        logger.debug("fetched an OAuth access token (expires in %s s)", expires)
        return token, expires

    async def _fetch_bearer_token(self) -> tuple[str, float | None]:
        cfg = self.config
        if not (cfg.access_key and cfg.secret_key):
            raise AuthError("v2 calls need QIANFAN_BEARER_TOKEN, or QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY "
                            "to mint one")
        url = cfg.iam_base_url.rstrip("/") + routes.BEARER_TOKEN
        params = {"expireInSeconds": str(cfg.bearer_token_expired_interval)}
        resp = await self.signed_request("GET", url, params=params, content=b"{}", retry=self._console_policy)
        token = resp.body.get("token")
        if not token:
            raise AuthError("the IAM bearer-token endpoint answered without a token")
        return str(token), float(cfg.bearer_token_expired_interval)

    # ------------------------------------------------------------------ send + retry
    async def _send(self, call: Call, policy: RetryPolicy, tokens: int = 0) -> Any:
        """Send ``call`` with retries; a QfResponse, or an async iterator of chunks if streaming."""
        auth = self._auth(call.api)
        tries: _Tries | None = None  # made on the first failure: a call that succeeds allocates none
        while True:
            while (hold := self.outages.delay(call.url)) > 0:  # the server refuses connections: wait it out
                await self.sleep(min(hold, 0.25))
            if self.limiter.enabled:
                await self.limiter.acquire(tokens, self.sleep)
            server = self.server_limits.get(call.url)
            if server is not None:
                await server.acquire(tokens if server.limits_tokens else 0, self.sleep)
            used_token: str | None = None
            try:
                headers, query, used_token = await auth.apply(call)
                result = await self._attempt(call, headers, query, policy)
                self.outages.answered(call.url)
                return result
            except QfnbError as exc:
                tries = tries or _Tries()
                if not await self._recover(call, exc, tries, policy, auth, used_token):
                    raise

    async def _recover(self, call: Call, exc: QfnbError, tries: _Tries, policy: RetryPolicy, auth: Auth,
                       used_token: str | None) -> bool:
        """After ``call`` failed with ``exc``: wait as the policy says; whether to try again. A rejected
        token is refreshed, a dead local daemon revived, once per call (that replay is no attempt)."""
        if isinstance(exc, AccessTokenExpiredError):
            if tries.refreshed or used_token is None or not auth.rejected(used_token):
                return False
            tries.refreshed = True
            logger.info("access token rejected (110/111); refreshing it and replaying the request")
            return True
        if isinstance(exc, ConnectionError) and not isinstance(exc, TimeoutError):
            self.outages.refused(call.url)
            if not tries.revived and self.config.embedded:
                tries.revived = True  # the local daemon died: find or start it again
                if await asyncio.to_thread(revive, origin(call.url)):
                    self.outages.answered(call.url)
                    return True
        delay = retry_delay(exc, tries.attempt, policy, retry_after=self._retry_after(call.url, exc))
        if delay is None:
            return False
        logger.debug("retrying %s %s in %.2fs (attempt %d/%d): %s", call.method, call.path, delay,
                     tries.attempt + 1, policy.attempts, exc)
        await self.sleep(delay)
        tries.attempt += 1
        return True

    def _retry_after(self, url: str, exc: QfnbError) -> str | None:
        """The wait the server asked for; a TPM refusal (336502) also slows the token limits."""
        if isinstance(exc, RequestError):
            return exc.headers.get("retry-after")
        if not isinstance(exc, APIError):
            return None
        if exc.error_code == 336502:
            self.limiter.on_tpm_exceeded()
            if (server := self.server_limits.get(url)) is not None:
                server.on_tpm_exceeded()
        return exc.retry_after

    async def _attempt(self, call: Call, headers: Mapping[str, str], query: str,
                       policy: RetryPolicy) -> QfResponse | AsyncIterator[QfResponse]:
        """One try: send through the transport, decode the answer (or open the stream)."""
        url = call.url if not query else call.url + ("&" if "?" in call.url else "?") + query
        request = Request(call.method, url, headers, call.content, policy.timeout)
        start = time.perf_counter()
        if call.stream:
            reply = await self.transport.stream(request)
            if reply.status_code == 200:
                self._note_limits(call.url, reply.headers)
            return await open_stream(call, reply, start)
        whole = await self.transport.send(request)
        resp = decode_reply(call, whole, time.perf_counter() - start)
        if call.api == "infer" or call.api == "v2":
            self._note_limits(call.url, whole.headers)
        return resp

    # ------------------------------------------------------------------ public API
    async def infer(self, api_type: str, endpoint: str, body: dict[str, Any], *, stream: bool = False,
                    retry: RetryPolicy | None = None, request_id: str | None = None,
                    tokens: int = 0, repeat: int = 0) -> Any:
        """POST a v1 inference call (``/{api_type}/{endpoint}``); QfResponse or async iterator.
        Recorded: the usage ledger, the budget, ``resp.provenance``; with the config's ``cache`` on,
        identical requests (``repeat``: an evaluation's repeat index) answer from the cache."""
        cfg = self.config
        path = (cfg.model_api_prefix + "/" + endpoint.lstrip("/")) if api_type == "" else routes.inference_path(
            api_type, endpoint, prefix=cfg.model_api_prefix)
        result = await self._recorded(api_type or "custom", endpoint, cfg.base_url, path, body, stream=stream,
                                      retry=retry, request_id=request_id, tokens=tokens, repeat=repeat)
        if tokens and isinstance(result, QfResponse):  # give back what the estimate over-charged
            actual = (result.body.get("usage") or {}).get("total_tokens")
            self.limiter.settle(tokens, actual)
            if (server := self.server_limits.get(cfg.base_url.rstrip("/") + path)) is not None:
                server.settle(tokens, actual)
        return result

    async def _recorded(self, kind: str, name: str, base: str, path: str, body: dict[str, Any], *, stream: bool,
                        retry: RetryPolicy | None, request_id: str | None, tokens: int = 0, repeat: int = 0,
                        via: Literal["infer", "v2"] = "infer") -> Any:
        """POST a model call, recorded (:mod:`qfnb._core.http.recorded`): answered from the cache on a hit."""
        if stream and not body.get("stream"):
            body = {**body, "stream": True}
        record = Recording.begin(self.config, kind, name, body, stream=stream, repeat=repeat)
        if record.hit is not None:
            return record.replay(path)
        headers = {"Content-Type": _JSON, "Request_id": request_id or new_request_id(), **self._lane()}
        call = Call("POST", base.rstrip("/") + path, body, headers, None, via, stream)
        return record.finish(await self._send(call, retry or self._infer_policy, tokens))

    def _lane(self) -> dict[str, str]:
        """The priority header of a batch's call to the local platform (none otherwise)."""
        return {PRIORITY_HEADER: "batch"} if self.config.embedded and batch_traffic.get() else {}

    def _note_limits(self, url: str, headers: Any) -> None:
        """Keep the limits a service's first answer advertises (see :attr:`server_limits`)."""
        if url not in self.server_limits:
            self.server_limits[url] = RateLimiter.from_headers(headers, self.clock)

    def needs_token_estimates(self) -> bool:
        """Whether a call should pass its estimated ``tokens`` (a TPM limit is in force)."""
        return self.limiter.limits_tokens or any(s is not None and s.limits_tokens
                                                 for s in self.server_limits.values())

    async def chat_v2(self, body: dict[str, Any], *, stream: bool = False, retry: RetryPolicy | None = None,
                      request_id: str | None = None, repeat: int = 0) -> Any:
        """POST the OpenAI-style v2 chat (bearer auth); recorded as :meth:`infer` is (route ``v2/chat``)."""
        cfg = self.config
        return await self._recorded("v2/chat", str(body.get("model") or ""), cfg.console_api_base_url,
                                    cfg.chat_v2_api_route, body, stream=stream, retry=retry, request_id=request_id,
                                    repeat=repeat, via="v2")

    async def console(self, path: str, body: dict[str, Any] | None = None, *, params: dict[str, Any] | None = None,
                      retry: RetryPolicy | None = None, method: str = "POST",
                      headers: Mapping[str, str] | None = None) -> QfResponse:
        """A bce-auth-v1 signed console call to ``{console_api_base_url}{path}`` (``headers``: extra ones)."""
        # a unique signed header: two calls never share a signature (the local platform refuses a
        # signature seen before on a call that changes state)
        headers = {"Content-Type": _JSON, "request-source": REQUEST_SOURCE, "x-bce-request-id": str(uuid.uuid4()),
                   **(headers or {})}
        url = self.config.console_api_base_url.rstrip("/") + path
        call = Call(method, url, body if body is not None else {}, headers, params, "console", False)
        try:
            result: QfResponse = await self._send(call, retry or self._console_policy)
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
        call = Call(method, url, content, hdrs, params, "raw", False)
        result: QfResponse = await self._send(call, retry or self._console_policy)
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


def default_transport(config: Config) -> Transport:
    """The transport for ``config``: its injected one, httpx's when a proxy is set, else aiohttp's."""
    if config.transport is not None:
        return config.transport
    pool = max(1, config.max_connections)
    if not config.proxy:
        try:
            from qfnb._core.transport.aiohttp import AiohttpTransport
        except ImportError:  # pragma: no cover - aiohttp is a dependency; httpx alone still works
            pass
        else:
            return AiohttpTransport(max_connections=pool, verify=config.ssl_verification_enabled)
    from qfnb._core.transport.httpx import HttpxTransport

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

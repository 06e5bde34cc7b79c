"""``AsyncQianfanClient``: the one async client per :class:`Config`.

It owns one ``httpx.AsyncClient`` per event loop (:mod:`qfnb._core.transport`: aiohttp's
connection pool via ``httpx-aiohttp``, sized for the configured concurrency), authenticates
each call (OAuth token / bce-auth-v1 / bearer), applies
the client's rate limits, retries transient failures with backoff, maps errors to the
:mod:`qfnb.errors` tree, and decodes SSE streams. Resources (``ChatCompletion``...) and
the console layer call it; the sync API reaches it through :mod:`qfnb._core.sync`.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from qfnb.protocol import routes
from qfnb.protocol.sse import SSEDecoder

from .auth import (
    REQUEST_SOURCE,
    InferenceAuth,
    SharedToken,
    choose_inference_auth,
    host_of,
    iam_headers,
    parse_oauth_response,
)
from .config import Config, resolve_config
from .errors import (
    AccessTokenExpiredError,
    APIError,
    AuthError,
    ConnectionError,
    QfnbError,
    RequestError,
    StreamError,
    TimeoutError,
)
from .ratelimit import RateLimiter
from .response import QfRequest, QfResponse
from .retry import RetryPolicy, retry_delay
from .wire import error_from_body, error_from_http, stream_item_error

if TYPE_CHECKING:
    from .transport import Transport

__all__ = ["AsyncQianfanClient", "get_client"]

logger = logging.getLogger("qfnb.client")

_JSON = "application/json"
_SERVICE_LIST_TTL = 3600.0


def new_request_id() -> str:
    return "qfnb-" + secrets.token_hex(8)


class _Call:
    """Everything needed to (re)send one request; rebuilt auth on each attempt."""

    __slots__ = ("api", "body", "content", "headers", "method", "params", "stream", "url")

    def __init__(self, method: str, url: str, body: Any, headers: dict[str, str], params: dict[str, Any] | None,
                 api: str, stream: bool) -> None:
        self.method = method
        self.url = url
        self.body = body
        self.content = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.headers = headers
        self.params = params
        self.api = api  # "infer" | "v2" | "console" | "raw"
        self.stream = stream


class AsyncQianfanClient:
    """The async client for one configuration. Get one with :func:`get_client`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._http_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Transport] = (
            weakref.WeakKeyDictionary())
        self._http_lock = threading.Lock()
        self.limiter = RateLimiter(config.qps_limit, config.rpm_limit, config.tpm_limit)
        #: per service URL: a limiter from the limits its answers advertise (None: none advertised)
        self.server_limits: dict[str, RateLimiter | None] = {}
        self._oauth = SharedToken(self._fetch_oauth_token)
        if config.access_token:
            self._oauth.set(config.access_token)
        self._bearer = SharedToken(self._fetch_bearer_token, skew=10.0)
        if config.bearer_token:
            self._bearer.set(config.bearer_token)
        self._services: tuple[float, dict[str, Any]] | None = None
        self._token_query: tuple[str, str] | None = None
        self._infer_auth: InferenceAuth | None = None
        self._infer_policy = RetryPolicy.inference(config)
        self._console_policy = RetryPolicy.console(config)

    def __repr__(self) -> str:
        return f"AsyncQianfanClient({self.config!r})"

    # ------------------------------------------------------------------ HTTP plumbing
    def _http(self) -> Transport:
        """This loop's HTTP client (created on first use; httpx/aiohttp are imported then)."""
        loop = asyncio.get_running_loop()
        http = self._http_by_loop.get(loop)
        if http is None:
            with self._http_lock:
                http = self._http_by_loop.get(loop)
                if http is None:
                    from .transport import Transport

                    cfg = self.config
                    http = Transport(max_connections=max(1, cfg.max_connections),
                                     verify=cfg.ssl_verification_enabled, proxy=cfg.proxy or None)
                    self._http_by_loop[loop] = http
        return http

    async def aclose(self) -> None:
        """Close the HTTP connections this loop opened."""
        loop = asyncio.get_running_loop()
        pool = self._http_by_loop.pop(loop, None)
        if pool is not None:
            await pool.aclose()

    # ------------------------------------------------------------------ auth
    async def _fetch_oauth_token(self) -> tuple[str, float | None]:
        cfg = self.config
        if not (cfg.ak and cfg.sk):
            raise AuthError("the access token was rejected and no QIANFAN_AK/QIANFAN_SK is set to mint a new one")
        url = cfg.base_url.rstrip("/") + routes.OAUTH_TOKEN
        params = {"grant_type": "client_credentials", "client_id": cfg.ak, "client_secret": cfg.sk}
        try:
            resp = await self._http().request("POST", url, params=params, content=b"{}",
                                              headers={"Content-Type": _JSON}, timeout=cfg.auth_timeout)
        except _transport_errors() as exc:
            raise _transport_error(exc, "POST", routes.OAUTH_TOKEN) from None
        try:
            body = json.loads(resp.content)
        except ValueError:
            body = None
        if resp.status_code >= 400 and not (isinstance(body, dict) and "error" in body):
            raise AuthError(f"OAuth token request failed with HTTP {resp.status_code}")
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
        resp = await self.signed_request("GET", url, params=params, content=b"{}",
                                         retry=self._console_policy)
        token = resp.body.get("token")
        if not token:
            raise AuthError("the IAM bearer-token endpoint answered without a token")
        return str(token), float(cfg.bearer_token_expired_interval)

    def _inference_auth(self) -> InferenceAuth:
        if self._infer_auth is None:
            self._infer_auth = choose_inference_auth(self.config)
        return self._infer_auth

    async def _authorize(self, call: _Call) -> tuple[dict[str, str], dict[str, Any] | str | None, str | None]:
        """Headers and params for one attempt, and the token used (to report it bad)."""
        cfg = self.config
        if call.api == "infer":
            mode = self._inference_auth()
            if mode in (InferenceAuth.OAUTH, InferenceAuth.TOKEN):
                token = await self._oauth.get()
                if call.params:
                    return call.headers, {**call.params, "access_token": token}, token
                cached = self._token_query
                if cached is None or cached[0] != token:
                    cached = self._token_query = (token, urlencode({"access_token": token}))
                return call.headers, cached[1], token
            if mode is InferenceAuth.IAM:
                host = cfg.iam_host or host_of(call.url)
                return self._sign(call, host), call.params, None
            if mode is InferenceAuth.ACCESS_CODE:
                return {**call.headers, "Authorization": f"ACCESSCODE {cfg.access_code}"}, call.params, None
            return call.headers, call.params, None
        if call.api == "v2":
            token = await self._bearer.get()
            headers = {**call.headers, "Authorization": f"Bearer {token}"}
            if cfg.app_id:
                headers["appid"] = cfg.app_id
            return headers, call.params, None
        if call.api in ("console", "raw"):
            if not (cfg.access_key and cfg.secret_key):
                if cfg.no_auth:
                    return call.headers, call.params, None
                raise AuthError("console calls need QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY "
                                "(access_key=, secret_key=)")
            return self._sign(call), call.params, None
        return call.headers, call.params, None

    def _sign(self, call: _Call, host: str | None = None) -> dict[str, str]:
        cfg = self.config
        assert cfg.access_key and cfg.secret_key
        return iam_headers(call.method, call.url, call.params, call.headers, cfg.access_key, cfg.secret_key,
                           expiration=cfg.iam_sign_expiration_sec, host=host)

    # ------------------------------------------------------------------ send + retry
    async def _send(self, call: _Call, policy: RetryPolicy, tokens: int = 0) -> Any:
        """Send ``call`` with retries; a QfResponse, or an async iterator of chunks if streaming."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            if self.limiter.enabled:
                await self.limiter.acquire(tokens)
            server = self.server_limits.get(call.url)
            if server is not None:
                await server.acquire(tokens if server.limits_tokens else 0)
            used_token: str | None = None
            retry_after: str | None = None
            try:
                headers, params, used_token = await self._authorize(call)
                if call.stream:
                    return await self._open_stream(call, headers, params, policy, used_token)
                return await self._once(call, headers, params, policy)
            except AccessTokenExpiredError:
                if refreshed or used_token is None or not self._oauth.invalidate(used_token):
                    raise
                refreshed = True
                attempt -= 1
                logger.info("access token rejected (110/111); refreshing it and replaying the request")
                continue
            except QfnbError as exc:
                if isinstance(exc, RequestError | APIError):
                    retry_after = getattr(exc, "headers", {}).get("retry-after") if isinstance(
                        exc, RequestError) else getattr(exc, "retry_after", None)
                if isinstance(exc, APIError) and exc.error_code == 336502:
                    self.limiter.on_tpm_exceeded()
                    if (server := self.server_limits.get(call.url)) is not None:
                        server.on_tpm_exceeded()
                delay = retry_delay(exc, attempt, policy, retry_after=retry_after)
                if delay is None:
                    raise
                logger.debug("retrying %s %s in %.2fs (attempt %d/%d): %s", call.method,
                             _path(call.url), delay, attempt + 1, policy.attempts, exc)
                await asyncio.sleep(delay)

    async def _once(self, call: _Call, headers: dict[str, str], params: dict[str, Any] | str | None,
                    policy: RetryPolicy) -> QfResponse:
        start = time.perf_counter()
        try:
            resp = await self._http().request(call.method, call.url, params=params, content=call.content,
                                              headers=headers, timeout=policy.timeout)
        except _transport_errors() as exc:
            raise _transport_error(exc, call.method, _path(call.url)) from None
        latency = time.perf_counter() - start
        rheaders = resp.headers
        content = resp.content
        body: Any
        try:
            body = json.loads(content) if content else {}
        except ValueError:
            body = None
        if resp.status_code >= 300:
            err = error_from_http(resp.status_code, body, rheaders, resp.text if body is None else "")
            if isinstance(err, APIError):
                err.retry_after = rheaders.get("retry-after")  # type: ignore[attr-defined]
            raise err
        if not isinstance(body, dict) and call.api == "raw":
            body = {"_raw": resp.text}  # signed_request: non-JSON bodies (BOS objects) as text
        if not isinstance(body, dict):
            raise RequestError(f"expected a JSON object from {_path(call.url)}, got {content[:200]!r}",
                               status_code=resp.status_code, body=content[:2000], headers=rheaders)
        err2 = error_from_body(body, resp.status_code, rheaders.get("x-baidu-request-id"))
        if err2 is not None:
            raise err2
        if call.api in ("infer", "v2"):
            self._note_limits(call.url, rheaders)
        stat = {"request_latency": latency, "total_latency": latency,
                "start_timestamp": int((time.time() - latency) * 1000)}
        return QfResponse(resp.status_code, rheaders, body,
                          QfRequest(call.method, _path(call.url), call.headers.get("Request_id")), stat)

    async def _open_stream(self, call: _Call, headers: dict[str, str], params: dict[str, Any] | str | None,
                           policy: RetryPolicy, used_token: str | None) -> AsyncIterator[QfResponse]:
        start = time.perf_counter()
        try:
            resp = await self._http().stream(call.method, call.url, params=params, content=call.content,
                                             headers=headers, timeout=policy.timeout)
        except _transport_errors() as exc:
            raise _transport_error(exc, call.method, _path(call.url)) from None
        ctype = resp.headers.get("content-type", "")
        if resp.status_code != 200 or "json" in ctype:
            try:
                raw = await resp.aread()
            except Exception as exc:
                raise _transport_error(exc, call.method, _path(call.url)) from None
            finally:
                await resp.aclose()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            if resp.status_code >= 300:
                raise error_from_http(resp.status_code, body, resp.headers, raw[:300].decode(errors="replace"))
            err = error_from_body(body, resp.status_code)
            if err is not None:
                raise err
            if not isinstance(body, dict):
                raise RequestError(f"expected an event stream from {_path(call.url)}, got {ctype or 'no type'}",
                                   status_code=resp.status_code, body=raw[:2000], headers=resp.headers)
            # a server may answer a stream request with one JSON body: a one-chunk stream
            one = QfResponse(resp.status_code, resp.headers, body,
                             QfRequest(call.method, _path(call.url), call.headers.get("Request_id")),
                             {"request_latency": time.perf_counter() - start})
            return _single(one)
        self._note_limits(call.url, resp.headers)
        request = QfRequest(call.method, _path(call.url), call.headers.get("Request_id"))
        chunks = _iterate_stream(resp, request, start, v2=call.api == "v2")
        # Read the first event before handing the stream out: an error sent as the first line
        # (token expired, overload) or a cut before any data is then retried like any other call.
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            return _single(None)
        except StreamError as exc:
            await chunks.aclose()
            raise ConnectionError(f"{exc} (before any data; safe to retry)") from None
        except BaseException:
            await chunks.aclose()
            raise
        return _chain(first, chunks)

    # ------------------------------------------------------------------ public API
    async def infer(self, api_type: str, endpoint: str, body: dict[str, Any], *, stream: bool = False,
                    retry: RetryPolicy | None = None, request_id: str | None = None,
                    tokens: int = 0) -> Any:
        """POST a v1 inference call (``/{api_type}/{endpoint}``); QfResponse or async iterator."""
        cfg = self.config
        path = (cfg.model_api_prefix + "/" + endpoint.lstrip("/")) if api_type == "" else routes.inference_path(
            api_type, endpoint, prefix=cfg.model_api_prefix)
        headers = {"Content-Type": _JSON, "Request_id": request_id or new_request_id()}
        if stream and not body.get("stream"):
            body = {**body, "stream": True}
        call = _Call("POST", cfg.base_url.rstrip("/") + path, body, headers, None, "infer", stream)
        result = await self._send(call, retry or self._infer_policy, tokens)
        if tokens and isinstance(result, QfResponse):  # give back what the estimate over-charged
            actual = (result.body.get("usage") or {}).get("total_tokens")
            self.limiter.settle(tokens, actual)
            if (server := self.server_limits.get(call.url)) is not None:
                server.settle(tokens, actual)
        return result

    def _note_limits(self, url: str, headers: Any) -> None:
        """Keep the limits a service's first answer advertises (see :attr:`server_limits`)."""
        if url not in self.server_limits:
            self.server_limits[url] = _advertised_limits(headers)

    def needs_token_estimates(self) -> bool:
        """Whether a call should pass its estimated ``tokens`` (a TPM limit is in force)."""
        return self.limiter.limits_tokens or any(s is not None and s.limits_tokens
                                                 for s in self.server_limits.values())

    async def chat_v2(self, body: dict[str, Any], *, stream: bool = False, retry: RetryPolicy | None = None,
                      request_id: str | None = None) -> Any:
        """POST the OpenAI-style v2 chat (bearer auth)."""
        cfg = self.config
        headers = {"Content-Type": _JSON, "Request_id": request_id or new_request_id()}
        if stream and not body.get("stream"):
            body = {**body, "stream": True}
        call = _Call("POST", cfg.console_api_base_url.rstrip("/") + cfg.chat_v2_api_route, body, headers, None,
                     "v2", stream)
        return await self._send(call, retry or self._infer_policy)

    async def console(self, path: str, body: dict[str, Any] | None = None, *, params: dict[str, Any] | None = None,
                      retry: RetryPolicy | None = None, method: str = "POST") -> QfResponse:
        """A bce-auth-v1 signed console call to ``{console_api_base_url}{path}``."""
        headers = {"Content-Type": _JSON, "request-source": REQUEST_SOURCE}
        url = self.config.console_api_base_url.rstrip("/") + path
        call = _Call(method, url, body if body is not None else {}, headers, params, "console", False)
        try:
            result: QfResponse = await self._send(call, retry or self._console_policy)
        finally:
            if routes.changes_service_list(path, (params or {}).get("Action")):
                self.invalidate_services()
        return result

    async def console_v2(self, route: str, action: str, body: dict[str, Any] | None = None, *,
                         retry: RetryPolicy | None = None) -> QfResponse:
        """``POST /v2/<domain>?Action=<action>``."""
        return await self.console(route, body, params={"Action": action}, retry=retry)

    async def signed_request(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                             content: bytes | dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                             retry: RetryPolicy | None = None) -> QfResponse:
        """Any bce-auth-v1 signed request to a full URL (BOS uploads, IAM). Non-JSON bodies are kept
        as ``{"_raw": text}``."""
        hdrs = {"Content-Type": _JSON if not isinstance(content, bytes) else "application/octet-stream",
                **(headers or {})}
        call = _Call(method, url, content, hdrs, params, "raw", False)
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
        return result  # type: ignore[no-any-return]

    def invalidate_services(self) -> None:
        """Forget the cached ``service/list``: the next lookup fetches it again."""
        self._services = None

    def cached_services(self) -> dict[str, Any] | None:
        return self._services[1] if self._services is not None else None


async def _single(item: QfResponse | None) -> AsyncIterator[QfResponse]:
    if item is not None:
        yield item


async def _chain(first: QfResponse, rest: AsyncGenerator[QfResponse, None]) -> AsyncIterator[QfResponse]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


def _advertised_limits(headers: Any) -> RateLimiter | None:
    """A limiter for the limits a service's answer advertises (``X-Ratelimit-Limit-*``)."""
    def number(name: str) -> float | None:
        try:
            return float(headers.get(name) or 0) or None
        except (TypeError, ValueError):
            return None

    return RateLimiter.from_server(number("x-ratelimit-limit-requests"), number("x-ratelimit-limit-tokens"))


def _path(url: str) -> str:
    cut = url.find("/", url.find("//") + 2) if "//" in url else 0
    return url[cut:] if cut >= 0 else "/"


def _transport_errors() -> tuple[type[BaseException], ...]:
    from .transport import TRANSPORT_ERRORS

    return TRANSPORT_ERRORS


def _transport_error(exc: BaseException, method: str, path: str) -> QfnbError:
    """Map a transport exception without leaking the URL's query (it may hold a token)."""
    if isinstance(exc, QfnbError):
        return exc
    from .transport import is_timeout

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    name = type(cause).__name__
    if is_timeout(exc):
        return TimeoutError(f"{method} {path} timed out ({name})")
    return ConnectionError(f"{method} {path} failed: connection error ({name})")


async def _iterate_stream(resp: Any, request: QfRequest, start: float, *,
                          v2: bool) -> AsyncGenerator[QfResponse, None]:
    """Decode the SSE body into chunk QfResponses; a cut or unterminated stream is a StreamError."""
    decoder = SSEDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    count = 0
    first: float | None = None
    finished = False
    try:
        try:
            async for raw in resp.aiter_bytes():
                for item in decoder.feed(utf8.decode(raw)):
                    if item.done:
                        finished = True
                        return
                    err = stream_item_error(item)
                    if err is not None:
                        raise err
                    if not isinstance(item.data, dict):
                        continue
                    now = time.perf_counter()
                    if first is None:
                        first = now - start
                    count += 1
                    stat = {"first_token_latency": first, "request_latency": now - start,
                            "total_latency": now - start}
                    body = item.data
                    if item.event:
                        body.setdefault("_event", item.event)
                    yield QfResponse(resp.status_code, resp.headers, body, request, stat)
                    if not v2 and body.get("is_end"):
                        finished = True
                        return
            for item in decoder.close():
                if item.done:
                    finished = True
                    return
                err = stream_item_error(item)
                if err is not None:
                    raise err
                if isinstance(item.data, dict):
                    count += 1
                    yield QfResponse(resp.status_code, resp.headers, item.data, request, {})
                    if item.data.get("is_end"):
                        finished = True
                        return
        except QfnbError:
            raise
        except _transport_errors() as exc:
            raise StreamError(f"the stream from {request.url} broke off after {count} chunk(s) "
                              f"({type(exc).__name__}); the answer is incomplete") from None
        if not finished:
            raise StreamError(f"the stream from {request.url} ended after {count} chunk(s) without its final "
                              "event; the answer is incomplete")
    finally:
        await resp.aclose()


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

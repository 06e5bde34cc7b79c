"""Credentials on the wire: OAuth access tokens, bce-auth-v1 signing, v2 bearer tokens.

Each API kind has one strategy object (:class:`Auth`): v1 inference an :class:`OAuthQuery`
(or :class:`BceSigner` with IAM keys, :class:`AccessCodeAuth` on a private deployment), v2
chat a :class:`BearerAuth`, console/BOS/IAM calls a :class:`BceSigner`. The pure parts
(which scheme applies, what headers a signed request carries, how a token response reads) are
plain functions; the stateful caches below only remember tokens and
make sure concurrent callers share one refresh. No asyncio primitive is created before
it is needed inside a running loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from qfnb._core.config import Config, mask
from qfnb._core.errors import AuthError
from qfnb.protocol.wires.qianfan.signing import bce_date, sign

if TYPE_CHECKING:
    from qfnb._core.http.call import Call

__all__ = ["AccessCodeAuth", "Auth", "BceSigner", "BearerAuth", "MissingAuth", "NoAuth", "OAuthQuery",
           "SharedToken", "console_auth", "credential_report", "iam_headers", "inference_auth", "parse_oauth_response"]

logger = logging.getLogger("qfnb.auth")


def host_of(url: str) -> str:
    """The ``Host`` header value for ``url`` (netloc without userinfo)."""
    return urlsplit(url).netloc.rpartition("@")[2]


def iam_headers(method: str, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str],
                access_key: str, secret_key: str, *, expiration: int = 300,
                now: datetime | float | None = None, host: str | None = None) -> dict[str, str]:
    """``headers`` plus ``Host``, ``x-bce-date`` and the bce-auth-v1 ``Authorization``; pure."""
    out = dict(headers)
    out["Host"] = host or host_of(url)
    out["x-bce-date"] = bce_date(now)
    path = urlsplit(url).path or "/"
    out["Authorization"] = sign(method, path, params, out, access_key, secret_key, out["x-bce-date"], expiration)
    return out


def parse_oauth_response(body: Any, config: Config) -> tuple[str, float | None]:
    """``(access_token, expires_in)`` from the OAuth answer, or AuthError (masked keys only)."""
    if not isinstance(body, dict):
        raise AuthError("the OAuth endpoint answered with something that is not a JSON object")
    if body.get("access_token"):
        expires = body.get("expires_in")
        return str(body["access_token"]), float(expires) if isinstance(expires, int | float) else None
    error = body.get("error") or body.get("error_code") or "unknown"
    desc = body.get("error_description") or body.get("error_msg") or ""
    raise AuthError(f"OAuth token request failed ({error}: {desc}); "
                    f"check QIANFAN_AK={mask(config.ak)} and its QIANFAN_SK. Accounts made since the v2 API "
                    "have no v1 app keys: set the account's v2 API key (QIANFAN_API_KEY) instead")


class SharedToken:
    """A cached credential minted on demand; concurrent callers share one fetch.

    ``fetch`` returns ``(token, seconds_valid or None)``. :meth:`invalidate` is guarded:
    a token reported bad is only dropped if it is still the current one and it was not
    fetched within ``min_age`` seconds by a refresh that already answered this very
    failure (so a burst of 110s triggers one refresh, not a storm).
    """

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float | None]]], *, min_age: float = 1.0,
                 skew: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._min_age = min_age
        self._skew = skew
        self._clock = clock
        self._token: str | None = None
        self._expires: float | None = None
        self._fetched_at = 0.0
        self._guard = threading.Lock()
        self._inflight: dict[asyncio.AbstractEventLoop, asyncio.Future[str]] = {}
        self.refreshes = 0

    def current(self) -> str | None:
        token, expires = self._token, self._expires
        if token is None or (expires is not None and self._clock() >= expires - self._skew):
            return None
        return token

    async def get(self) -> str:
        token = self.current()
        if token is not None:
            return token
        loop = asyncio.get_running_loop()
        with self._guard:
            fut = self._inflight.get(loop)
            owner = fut is None
            if fut is None:
                fut = loop.create_future()
                self._inflight[loop] = fut
        if not owner:
            return await asyncio.shield(fut)
        try:
            token, valid = await self._fetch()
        except BaseException as exc:
            with self._guard:
                self._inflight.pop(loop, None)
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        with self._guard:
            self._token = token
            self._fetched_at = self._clock()
            self._expires = self._fetched_at + valid if valid else None
            self.refreshes += 1
            self._inflight.pop(loop, None)
        fut.set_result(token)
        return token

    def invalidate(self, bad_token: str) -> bool:
        """The platform rejected ``bad_token``: should the caller retry with a fresh token?

        True if ``bad_token`` was dropped (the next :meth:`get` fetches a new one) or was already
        replaced by another caller's refresh; False only when a token fetched moments ago (within
        ``min_age``, after the first refresh) is rejected again, since refreshing once more won't help.
        """
        with self._guard:
            if self._token != bad_token:
                return True  # already refreshed by someone else: just retry with the new one
            if self._clock() - self._fetched_at < self._min_age and self.refreshes > 1:
                return False  # a brand-new token rejected again: refreshing once more won't help
            self._token = None
            return True

    def set(self, token: str) -> None:
        with self._guard:
            self._token, self._expires, self._fetched_at = token, None, self._clock()


# ---------------------------------------------------------------------------- one strategy per API kind
class Auth:
    """How one kind of call is authenticated. :meth:`apply` gives one attempt's headers, its
    encoded query (``""`` for none) and the token it used (None for schemes without one), and
    :meth:`rejected` says whether a call the platform refused for its token may be replayed."""

    async def apply(self, call: Call) -> tuple[Mapping[str, str], str, str | None]:
        return call.headers, _query(call.params), None

    def rejected(self, token: str) -> bool:
        return False


class NoAuth(Auth):
    """Nothing added (``QIANFAN_NO_AUTH``, or a private deployment's open endpoint)."""


class MissingAuth(Auth):
    """No credentials for this kind of call: every attempt raises AuthError saying what to set."""

    def __init__(self, message: str) -> None:
        self.message = message

    async def apply(self, call: Call) -> tuple[Mapping[str, str], str, str | None]:
        raise AuthError(self.message)


class OAuthQuery(Auth):
    """v1 inference: a (shared, refreshed on demand) OAuth ``access_token`` in the query."""

    def __init__(self, token: SharedToken) -> None:
        self.token = token
        self._encoded: tuple[str, str] | None = None

    async def apply(self, call: Call) -> tuple[Mapping[str, str], str, str | None]:
        token = await self.token.get()
        cached = self._encoded
        if cached is None or cached[0] != token:
            cached = self._encoded = (token, urlencode({"access_token": token}))
        query = cached[1] if not call.params else _query(call.params) + "&" + cached[1]
        return call.headers, query, token

    def rejected(self, token: str) -> bool:
        return self.token.invalidate(token)


class BceSigner(Auth):
    """bce-auth-v1: console calls, BOS/IAM requests, and v1 inference with an IAM key pair."""

    def __init__(self, access_key: str, secret_key: str, *, expiration: int = 300, host: str | None = None) -> None:
        self._keys = (access_key, secret_key)
        self.expiration = expiration
        self.host = host

    def __repr__(self) -> str:
        return f"BceSigner(access_key={mask(self._keys[0])})"

    async def apply(self, call: Call) -> tuple[Mapping[str, str], str, str | None]:
        headers = iam_headers(call.method, call.url, call.params, call.headers, *self._keys,
                              expiration=self.expiration, host=self.host)
        return headers, _query(call.params), None


class BearerAuth(Auth):
    """v2 inference: ``Authorization: Bearer <token>`` (a given one, or minted through IAM)."""

    def __init__(self, token: SharedToken, app_id: str | None = None) -> None:
        self.token = token
        self.app_id = app_id

    async def apply(self, call: Call) -> tuple[Mapping[str, str], str, str | None]:
        token = await self.token.get()
        headers = {**call.headers, "Authorization": f"Bearer {token}"}
        if self.app_id:
            headers["appid"] = self.app_id
        return headers, _query(call.params), None


class AccessCodeAuth(Auth):
    """A private deployment's ``Authorization: ACCESSCODE <code>``."""

    def __init__(self, code: str) -> None:
        self._code = code

    def __repr__(self) -> str:
        return "AccessCodeAuth(****)"

    async def apply(self, call: Call) -> tuple[Mapping[str, str], str, str | None]:
        return {**call.headers, "Authorization": f"ACCESSCODE {self._code}"}, _query(call.params), None


def inference_auth(config: Config, oauth: SharedToken) -> Auth:
    """The strategy for v1 inference, the first that applies (reference §1.0): a private deployment's
    access code; AK/SK exchanged for a cached access token, or a given access token used as-is;
    bce-auth-v1 with ACCESS_KEY/SECRET_KEY; none (``no_auth``). AuthError when nothing is configured."""
    if config.enable_private and config.access_code:
        return AccessCodeAuth(config.access_code)
    if (config.ak and config.sk) or config.access_token:
        return OAuthQuery(oauth)
    if config.access_key and config.secret_key:
        return BceSigner(config.access_key, config.secret_key, expiration=config.iam_sign_expiration_sec,
                         host=config.iam_host)
    if config.no_auth:
        return NoAuth()
    if config.ak or config.sk:
        raise AuthError("both QIANFAN_AK and QIANFAN_SK (ak=, sk=) are needed for OAuth; only one is set. "
                        + credential_report(config))
    raise AuthError("this call takes a v1 route, which needs v1 app keys or IAM keys, and neither is set"
                    + (" (a v2 API key is set: leave version= unset, or pass version=2, to use the v2 routes)"
                       if config.bearer_token else "") + ". " + credential_report(config))


def credential_report(config: Config) -> str:
    """Which kinds of credential qfnb reads, the v2 API key first, and which of them are set (never
    their values)."""
    kinds = (("a v2 API key (QIANFAN_API_KEY or QIANFAN_BEARER_TOKEN; api_key=)", bool(config.bearer_token)),
             ("IAM keys (QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY; access_key=, secret_key=)",
              bool(config.access_key and config.secret_key)),
             ("v1 app keys (QIANFAN_AK and QIANFAN_SK; ak=, sk=) or QIANFAN_ACCESS_TOKEN",
              bool((config.ak and config.sk) or config.access_token)))
    return "Credentials: " + "; ".join(f"{name}: {'set' if given else 'missing'}" for name, given in kinds)


def console_auth(config: Config) -> Auth:
    """The strategy for console, BOS and IAM calls: bce-auth-v1 with the IAM key pair."""
    if config.access_key and config.secret_key:
        return BceSigner(config.access_key, config.secret_key, expiration=config.iam_sign_expiration_sec)
    if config.no_auth:
        return NoAuth()
    return MissingAuth("console calls (fine-tunes, data sets, services) are signed with IAM keys, which are "
                       "missing; a v2 API key alone cannot sign them (create IAM keys in the console's "
                       "security settings). " + credential_report(config))


def _query(params: Mapping[str, Any] | None) -> str:
    return urlencode(params) if params else ""

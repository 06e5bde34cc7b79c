"""Credential checks, as the platform does them: OAuth tokens, bce-auth-v1, bearer tokens."""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from qfnb.local.domain.state.store import Store
from qfnb.local.domain.state.values import iso
from qfnb.local.server.middleware.replay import ReplayCache, changes_state, from_loopback
from qfnb.local.server.serving.wire import bce_error, v1_error
from qfnb.local.settings import Credentials
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX
from qfnb.protocol.wires.qianfan.signing import AuthHeader, SignatureError, same_secret, sign, uri_encode, verify

log = logging.getLogger("qfnb.local.server.middleware.auth")

BEARER_PREFIX = "bearer:"
#: the longest validity a bce-auth-v1 signature may claim (clients sign for 300 s by default)
MAX_SIGNATURE_EXPIRATION = 1800
#: the BCE error code of a signature used again on a call that changes state
REPLAYED = "RequestReplayed"
#: the scope key holding a request's credential checks: each is made once a request, however many
#: layers ask (a model call's heartbeat, its idempotency table and its route)
CHECKED = "qfnb.credential_checks"

_T = TypeVar("_T")


def _once(check: Callable[[Authenticator, Request], _T]) -> Callable[[Authenticator, Request], _T]:
    """``check`` made once a request: its result, kept in the request's scope under its name, answers again."""

    @functools.wraps(check)
    def once(self: Authenticator, request: Request) -> _T:
        done: dict[str, Any] = request.scope.setdefault(CHECKED, {})
        if check.__name__ not in done:
            done[check.__name__] = check(self, request)
        result: _T = done[check.__name__]
        return result

    return once


class Authenticator:
    """Issues and checks the local platform's credentials."""

    def __init__(self, store: Store, credentials: Credentials, token_ttl: int) -> None:
        self._store = store
        self._creds = credentials
        self._ttl = token_ttl
        # tokens are stored as keyed hashes: the database alone never yields a usable token
        self._token_key = hmac.new(credentials.iam_secret_key.encode(), b"qfnb token store", "sha256").digest()
        store.purge_tokens(time.time())
        self._replays = ReplayCache()
        # tokens seen valid (hash -> expiry, is a bearer token): the inference hot path checks memory
        self._valid: dict[str, tuple[float, bool]] = {}

    def _hash(self, token: str) -> str:
        return hmac.new(self._token_key, token.encode(), "sha256").hexdigest()

    # ---- OAuth ---------------------------------------------------------------------------

    def issue_token(self, client_id: str | None, client_secret: str | None) -> tuple[int, dict[str, Any]]:
        """``POST /oauth/2.0/token``: ``(status, body)`` with a token or ``invalid_client``."""
        if not client_id or not same_secret(client_id, self._creds.api_key):
            return 401, {"error": "invalid_client", "error_description": "unknown client id"}
        if not client_secret or not same_secret(client_secret, self._creds.secret_key):
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        issued = int(time.time())
        token = f"24.{secrets.token_hex(16)}.{self._ttl}.{issued}.qfnb"
        self._store.purge_tokens(issued)
        self._store.add_token(self._hash(token), client_id, issued + self._ttl)
        return 200, {"access_token": token, "expires_in": self._ttl, "refresh_token": f"25.{secrets.token_hex(16)}",
                     "session_key": secrets.token_hex(8), "session_secret": secrets.token_hex(8),
                     "scope": "public ai_custom_qianfan_bloomz_7b_compressed wenxinworkshop"}

    def issue_bearer(self, expire_seconds: int) -> dict[str, Any]:
        """``GET /v1/BCE-BEARER/token`` (already IAM-verified): a v2 bearer token."""
        issued = time.time()
        token = f"bce-v3/ALTAK-{secrets.token_hex(10)}/{secrets.token_hex(20)}"
        self._store.purge_tokens(issued)
        self._store.add_token(self._hash(token), BEARER_PREFIX + self._creds.access_key, issued + expire_seconds)
        return {"userId": "qfnb-local", "token": token, "status": "enable",
                "createTime": iso(issued), "expireTime": iso(issued + expire_seconds)}

    # ---- checks: each returns None when the request may go on, else the error response ---

    def _token_state(self, token: str, *, bearer: bool) -> str:
        """``ok``, ``expired`` or ``invalid``; a token works only on its own API (an OAuth access
        token on v1, a minted bearer token on v2): used on the other it is ``invalid``."""
        key = self._hash(token)
        known = self._valid.get(key)
        if known is None:
            found = self._store.token(key)
            if found is None:
                return "invalid"
            known = (found[1], found[0].startswith(BEARER_PREFIX))
            if len(self._valid) >= 10_000:
                self._valid.clear()
            self._valid[key] = known
        expires, is_bearer = known
        if is_bearer != bearer:
            return "invalid"
        return "expired" if expires < time.time() else "ok"

    @_once
    def check_signature(self, request: Request) -> JSONResponse | None:
        """Verify a bce-auth-v1 Authorization header (or a shared link's ``?authorization=``, see
        :func:`presigned`); BCE error shape on failure."""
        auth = self._verified(request)
        if isinstance(auth, JSONResponse):
            return auth
        if changes_state(request.method, request.url.path, request.query_params.get("Action")) and \
                not from_loopback(request) and \
                not self._replays.first_use(auth.signature, auth.timestamp, auth.expiration):
            log.info("refused a replayed signature on %s %r", request.method, request.url.path)
            response = bce_error(409, REPLAYED, "this signature was already used for a call that changes "
                                 "state; sign the request again (each signature is good for one such call)")
            response.headers["Retry-After"] = "1"
            return response
        return None

    def signed_by(self, request: Request) -> str | None:
        """The access key whose secret signed ``request`` (a bce-auth-v1 signature that verifies),
        or None; nothing is recorded (a replayed signature is refused where it changes state)."""
        auth = self._verified(request)
        return None if isinstance(auth, JSONResponse) else auth.access_key

    @_once
    def _verified(self, request: Request) -> AuthHeader | JSONResponse:
        """The verified bce-auth-v1 authorization of ``request``, or the BCE error answering it."""
        params = dict((k, v) for k, v in request.query_params.multi_items() if k.lower() != "authorization")
        headers = {**request.headers, **({"authorization": request.query_params["authorization"]}
                                          if presigned(request) else {})}
        raw = request.scope.get("raw_path") or b""
        # the path as sent, as decoded, and BCE-canonical (encoded except '/'): clients differ here
        paths = dict.fromkeys([raw.decode("latin-1").split("?", 1)[0] if raw else request.url.path,
                               request.url.path, uri_encode(request.url.path, encode_slash=False)])
        try:
            for i, path in enumerate(paths):
                try:
                    auth = verify(request.method, path, params, headers, self._secret_for)
                    break
                except SignatureError as exc:
                    if i == len(paths) - 1 or "does not match" not in str(exc):
                        raise
        except SignatureError as exc:
            text = str(exc)
            log.info("rejected bce-auth-v1 request to %r: %s", request.url.path, text)  # %r: no forged lines
            if text == "unknown access key":
                return bce_error(401, "NotFound", "Could not find credential.")
            if "expired" in text or "future" in text:
                return bce_error(401, "RequestExpired", f"Fail to authn user: {text}")
            if "does not match" in text:
                return bce_error(401, "SignatureDoesNotMatch", "Fail to authn user: Signature does not match")
            return bce_error(401, "AccessDenied", f"Fail to authn user: {text}")
        if auth.expiration > MAX_SIGNATURE_EXPIRATION:
            return bce_error(400, "InvalidArgument", f"expirationPeriodInSeconds is {auth.expiration}; at most "
                             f"{MAX_SIGNATURE_EXPIRATION} is accepted")
        return auth

    def shared_link(self, url: str, expiration_s: int = MAX_SIGNATURE_EXPIRATION) -> str:
        """``url`` (an object under this platform's ``/bos/``) readable with no credentials for
        ``expiration_s``: BOS's pre-signed link, signed with the platform's IAM key."""
        parts = urlsplit(url)
        signature = sign("GET", parts.path, None, {"Host": parts.netloc}, self._creds.access_key,
                         self._creds.iam_secret_key, time.time(), expiration_s)
        return f"{url}?authorization={quote(signature, safe='')}"

    def _secret_for(self, access_key: str) -> str | None:
        return self._creds.iam_secret_key if same_secret(access_key, self._creds.access_key) else None

    @_once
    def check_inference(self, request: Request) -> JSONResponse | None:
        """v1 inference: an OAuth ``access_token`` query parameter, or a bce-auth-v1 signature."""
        token = request.query_params.get("access_token")
        if token:
            state = self._token_state(token, bearer=False)
            if state == "invalid":
                return v1_error(ErrorCode.API_TOKEN_INVALID, "Access token invalid or no longer valid")
            if state == "expired":
                return v1_error(ErrorCode.API_TOKEN_EXPIRED, "Access token expired")
            return None
        if request.headers.get("authorization", "").startswith("bce-auth-v1/"):
            return self.check_signature(request)
        return v1_error(ErrorCode.API_TOKEN_INVALID, "Access token invalid or no longer valid")

    def allows_model_call(self, request: Request) -> bool:
        """Whether ``request``'s credential may call a model now: v1's (an access token or a
        signature) on the v1 inference API, else a bearer token (``x-api-key`` on Anthropic's wire)."""
        if request.url.path.startswith(MODEL_API_PREFIX):
            return self.check_inference(request) is None
        return self.check_api_key(request) is None

    def allows_any_model_call(self, request: Request) -> bool:
        """Whether ``request`` carries a credential some model call accepts: an access token (in
        its query), a signature, a bearer token or ``x-api-key`` (the keyed-calls route takes each)."""
        if request.query_params.get("access_token"):
            return self.check_inference(request) is None
        return self.allows_model_call(request)

    @_once
    def check_console(self, request: Request) -> JSONResponse | None:
        """Console APIs: bce-auth-v1 only."""
        if not request.headers.get("authorization") and not presigned(request):
            return bce_error(403, "AccessDenied", "Fail to authn user: missing Authorization header")
        return self.check_signature(request)

    @_once
    def check_bearer(self, request: Request) -> str | None:
        """v2 API: ``Authorization: Bearer <token>``; returns an error message or None."""
        header = request.headers.get("authorization", "")
        if header.startswith("bce-auth-v1/"):
            failure = self.check_signature(request)
            if failure is not None and failure.headers.get("x-bce-error-code") == REPLAYED:
                return "this IAM signature was already used for a call that changes state; sign the request again"
            return None if failure is None else "invalid IAM signature"
        if not header.lower().startswith("bearer "):
            return "missing bearer token: send 'Authorization: Bearer <token>'"
        return self._bearer_problem(header[7:].strip())

    @_once
    def check_api_key(self, request: Request) -> str | None:
        """:meth:`check_bearer`, where Anthropic's ``x-api-key`` (without an ``Authorization``
        header) is the platform's bearer token too; an error message or None."""
        key = request.headers.get("x-api-key")
        if key and not request.headers.get("authorization"):
            return self._bearer_problem(key.strip())
        return self.check_bearer(request)

    def _bearer_problem(self, token: str) -> str | None:
        state = self._token_state(token, bearer=True)
        if state == "invalid":
            return "invalid bearer token"
        if state == "expired":
            return "bearer token expired"
        return None


def presigned(request: Request) -> bool:
    """A read of a BOS object signed in its URL (BOS's pre-signed link: ``?authorization=``, no
    ``Authorization`` header); never a call that changes anything."""
    return (request.method in ("GET", "HEAD") and request.url.path.startswith("/bos/")
            and not request.headers.get("authorization") and bool(request.query_params.get("authorization")))


def authenticator(request: Request) -> Authenticator:
    """The app's :class:`Authenticator` (``app.state.auth``, set by ``create_app``)."""
    auth: Authenticator = request.app.state.auth
    return auth

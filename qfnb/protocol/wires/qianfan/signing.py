"""BCE ``bce-auth-v1`` request signing: pure functions, no I/O, no clock unless asked.

The client signs console calls (and IAM-signed v1 inference) with :func:`sign`; a server
verifies with :func:`verify`. Both build the same canonical request, so they meet only at
the wire. The algorithm (reference §1b):

* ``authStringPrefix = bce-auth-v1/{ak}/{timestamp}/{expiration}``
* ``signingKey = hex(HMAC-SHA256(sk, authStringPrefix))`` (the hex text is the next key)
* ``CanonicalRequest = METHOD \\n path \\n sorted enc(k)=enc(v) \\n sorted enc(name):enc(value)``
* ``signature = hex(HMAC-SHA256(signingKey, CanonicalRequest))``

Signed headers are listed sorted (the official SDK's order is random; servers canonicalize).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

__all__ = [
    "AUTH_VERSION",
    "AuthHeader",
    "SignatureError",
    "bce_date",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "parse_authorization",
    "parse_bce_date",
    "same_secret",
    "sign",
    "uri_encode",
    "verify",
]

AUTH_VERSION = "bce-auth-v1"


def same_secret(given: str, expected: str) -> bool:
    """Whether ``given`` (a credential as a request sent it) is ``expected``, compared in constant time as
    UTF-8 bytes: ``hmac.compare_digest`` raises TypeError on a ``str`` with non-ASCII characters, which
    any header or query value may hold."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


class SignatureError(ValueError):
    """An Authorization header that is malformed, expired or does not match."""


def uri_encode(value: Any, *, encode_slash: bool = True) -> str:
    """Percent-encode every byte except ``A-Z a-z 0-9 . ~ - _`` with upper-case hex.

    ``None`` becomes ``""``; other non-strings are ``str()``-ed first.
    """
    if value is None:
        return ""
    return quote(value if isinstance(value, str) else str(value), safe="" if encode_slash else "/")


def bce_date(now: datetime | float | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds) for ``now`` (default: the current time)."""
    if now is None:
        moment = datetime.now(UTC)
    elif isinstance(now, datetime):
        moment = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bce_date(text: str) -> datetime:
    """Inverse of :func:`bce_date`."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise SignatureError(f"bad timestamp {text!r}: expected YYYY-MM-DDTHH:MM:SSZ") from exc


def canonical_query(params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """Sorted ``enc(k)=enc(v)`` pairs joined by ``&`` (an ``authorization`` param is skipped)."""
    if not params:
        return ""
    items = params.items() if isinstance(params, Mapping) else params
    pairs = [f"{uri_encode(k)}={uri_encode(v)}" for k, v in items if str(k).lower() != "authorization"]
    return "&".join(sorted(pairs))


def canonical_headers(headers: Mapping[str, Any], signed: Iterable[str] | None = None) -> tuple[str, list[str]]:
    """Canonical header block and the sorted names it covers.

    With ``signed=None`` every header is signed (what the SDK does); otherwise exactly the
    named ones (how a verifier rebuilds it). Headers with empty values are left out.
    """
    wanted = None if signed is None else {s.strip().lower() for s in signed}
    lines: list[str] = []
    names: set[str] = set()
    for name, value in headers.items():
        key = name.strip().lower()
        text = "" if value is None else str(value).strip()
        if not text or key == "authorization" or (wanted is not None and key not in wanted):
            continue
        lines.append(f"{uri_encode(key)}:{uri_encode(text)}")
        names.add(key)
    return "\n".join(sorted(lines)), sorted(names)


def canonical_request(method: str, path: str, params: Mapping[str, Any] | None,
                      headers: Mapping[str, Any], signed: Iterable[str] | None = None) -> tuple[str, list[str]]:
    """``METHOD\\npath\\nquery\\nheaders`` and the signed header names. The body is not signed."""
    block, names = canonical_headers(headers, signed)
    text = "\n".join((method.upper(), path, canonical_query(params), block))
    return text, names


def _hmac_hex(key: str, msg: str) -> str:
    return hmac.new(key.encode("utf-8"), msg.encode("utf-8"), hashlib.sha256).hexdigest()


def _signature(sk: str, prefix: str, creq: str) -> str:
    return _hmac_hex(_hmac_hex(sk, prefix), creq)


def sign(method: str, path: str, params: Mapping[str, Any] | None, headers: Mapping[str, Any],
         ak: str, sk: str, timestamp: str | datetime | float, expiration: int = 300) -> str:
    """The ``Authorization`` header value for a request.

    ``headers`` should already hold ``Host`` and ``x-bce-date`` (= ``timestamp``); all of
    them are signed. ``path`` is used as given (the platform's paths need no encoding).
    """
    ts = timestamp if isinstance(timestamp, str) else bce_date(timestamp)
    prefix = f"{AUTH_VERSION}/{ak}/{ts}/{int(expiration)}"
    creq, names = canonical_request(method, path, params, headers)
    return f"{prefix}/{';'.join(names)}/{_signature(sk, prefix, creq)}"


@dataclass(frozen=True)
class AuthHeader:
    """The parts of a ``bce-auth-v1`` Authorization header."""

    access_key: str
    timestamp: str
    expiration: int
    signed_headers: tuple[str, ...]
    signature: str = field(repr=False)  # a credential-derived value: kept out of logs


def parse_authorization(value: str) -> AuthHeader:
    """Split a ``bce-auth-v1/{ak}/{ts}/{exp}/{h1;h2}/{sig}`` header; raise SignatureError if malformed."""
    parts = (value or "").strip().split("/")
    if len(parts) != 6 or parts[0] != AUTH_VERSION:
        raise SignatureError("Authorization is not a bce-auth-v1 string")
    _, ak, ts, exp, signed, sig = parts
    if not ak or not sig:
        raise SignatureError("Authorization lacks an access key or signature")
    try:
        expiration = int(exp)
    except ValueError as exc:
        raise SignatureError("Authorization expiration is not an integer") from exc
    parse_bce_date(ts)
    names = tuple(h for h in signed.split(";") if h)
    return AuthHeader(ak, ts, expiration, names, sig)


def verify(method: str, path: str, params: Mapping[str, Any] | None, headers: Mapping[str, Any],
           secret_for: Callable[[str], str | None] | str, *, now: datetime | float | None = None,
           check_expiry: bool = True, skew: int = 300) -> AuthHeader:
    """Check a request's ``Authorization`` header (server side). Returns the parsed header.

    ``secret_for`` maps an access key to its secret (``None`` = unknown key) or is the
    secret itself. ``params`` must not include the Authorization. Raises
    :class:`SignatureError` naming what is wrong (never the expected signature).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    raw = lowered.get("authorization")
    if not raw:
        raise SignatureError("missing Authorization header")
    auth = parse_authorization(str(raw))
    sk = secret_for if isinstance(secret_for, str) else secret_for(auth.access_key)
    if not sk:
        raise SignatureError("unknown access key")
    missing = [h for h in auth.signed_headers if h not in lowered]
    if missing:
        raise SignatureError(f"signed header(s) missing from the request: {', '.join(missing)}")
    if "host" not in auth.signed_headers:
        raise SignatureError("the host header must be signed")
    if check_expiry:
        issued = parse_bce_date(auth.timestamp).timestamp()
        moment = datetime.now(UTC).timestamp() if now is None else (
            now.timestamp() if isinstance(now, datetime) else float(now))
        if moment > issued + auth.expiration + skew:
            raise SignatureError("signature expired")
        if moment < issued - skew:
            raise SignatureError("signature timestamp is in the future")
    prefix = f"{AUTH_VERSION}/{auth.access_key}/{auth.timestamp}/{auth.expiration}"
    creq, _ = canonical_request(method, path, params, lowered, auth.signed_headers)
    if not same_secret(auth.signature, _signature(sk, prefix, creq)):
        raise SignatureError("signature does not match")
    return auth

"""What a local HTTP surface lets in: loopback names, ``Host``/``Origin`` allow-lists, paths.

Pure (no I/O, no name resolution): the one :func:`is_loopback` every server and CLI command asks,
and the checks the local adapters (``qfnb proxy``, ``qfnb openai``) run on each request before
forwarding it. A ``Host`` outside the allow-list is how DNS rebinding reaches a loopback server
(the attacker's name resolves to 127.0.0.1, the browser sends ``Host: evil.example``); an
``Origin`` outside it is a web page calling the server from the user's browser; a path with ``..``
(plain or percent-encoded, once or twice) would be forwarded somewhere the route does not name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

#: names that always mean this machine (RFC 6761 reserves ``localhost`` and its subdomains)
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address literal, IPv6 with or without brackets) is this machine."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The name in a ``Host`` header or an ``Origin`` (port, scheme and brackets dropped), lower-cased."""
    text = value.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):
        return text[1:text.find("]")].lower() if "]" in text else text.lower()
    return text.split(":", 1)[0].lower().rstrip(".") if text.count(":") <= 1 else text.lower()


def name_allowed(value: str, allowed: Iterable[str]) -> bool:
    """Whether a ``Host``/``Origin`` names a loopback host or one of ``allowed`` (names, no ports)."""
    name = host_name(value)
    return bool(name) and (is_loopback(name) or name in {a.strip().lower() for a in allowed})


def request_problem(host: str | None, origin: str | None, allowed: Iterable[str] = ()) -> str | None:
    """Why a request's ``Host``/``Origin`` headers may not reach a local server (None: they may).

    A missing ``Host`` is refused (HTTP/1.1 requires it); a missing ``Origin`` is a non-browser
    client and passes; ``Origin: null`` (sandboxed frames, file pages) is refused."""
    allowed = tuple(allowed)
    if not host:
        return "the request has no Host header"
    if not name_allowed(host, allowed):
        return f"Host {host_name(host)!r} is not this server's name (allowed: loopback names{_also(allowed)})"
    if origin is not None and (origin == "null" or not name_allowed(origin, allowed)):
        return f"Origin {origin!r} may not call this server (allowed: loopback names{_also(allowed)})"
    return None


def _also(allowed: tuple[str, ...]) -> str:
    return ", " + ", ".join(allowed) if allowed else ""


#: the most percent-decoding rounds looked through (``%252e`` is ``.`` after two)
DECODE_ROUNDS = 3


def path_problem(raw_path: str) -> str | None:
    """Why a request path may not be forwarded (None: it may): a ``..`` or ``.`` segment, a
    backslash, a NUL or an encoded ``/`` — as sent or after up to three rounds of percent-decoding."""
    text = raw_path.split("?", 1)[0]
    for _ in range(DECODE_ROUNDS + 1):
        if "\\" in text or "\x00" in text:
            return "the path holds a backslash or NUL"
        if any(seg in ("..", ".") for seg in text.split("/")):
            return "the path holds a '..' or '.' segment"
        decoded = unquote(text)
        if decoded == text:
            return None
        if "/" in decoded and decoded.count("/") != text.count("/"):
            return "the path holds an encoded '/'"
        text = decoded
    return "the path is percent-encoded too many times"

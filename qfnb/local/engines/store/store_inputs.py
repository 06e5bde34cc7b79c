"""Checks of what ``qfnb models add`` (and ``--engine`` / ``QFNB_ENGINES``) hands the store: a chat
template must render a conversation, and an engine URL must not point at a link-local or cloud
metadata address (the daemon would fetch from it on a user's behalf)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

#: characters of a chat template (the largest shipped ones are about 10 K)
MAX_TEMPLATE_CHARS = 256 * 1024
#: host names of cloud metadata services
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.azure.com", "instance-data"})
#: metadata addresses outside the link-local ranges (AWS over IPv6, Alibaba Cloud, Oracle Cloud)
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200"),
                                ipaddress.ip_address("192.0.0.192")})


class StoreInputError(ValueError):
    """A template or engine URL the store refuses; the message names what and why."""


def check_engine_url(url: Any, field: str = "engine URL") -> str:
    """``url`` when it is an http(s) URL to a host that is not link-local (169.254.0.0/16,
    fe80::/10) nor a cloud metadata service; else :class:`StoreInputError`."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise StoreInputError(f"{field} {url!r:.100} must start with http:// or https://.")
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError as exc:
        raise StoreInputError(f"{field} {url!r:.100} is not a valid URL ({exc}).") from None
    if not host:
        raise StoreInputError(f"{field} {url!r:.100} names no host.")
    if host in METADATA_HOSTS:
        raise StoreInputError(f"{field} {url!r:.100} points at a cloud metadata service; engines must be model "
                              "servers.")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url  # a host name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local or address in METADATA_ADDRESSES or address.is_multicast or address.is_unspecified:
        raise StoreInputError(f"{field} {url!r:.100} points at {address}, a link-local, metadata or unroutable "
                              "address; engines must be model servers.")
    return url


def check_template(text: Any) -> str:
    """``text`` when it renders a conversation as a chat template (jinja, sandboxed): every
    user message must appear in what it renders. Else :class:`StoreInputError`."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if not isinstance(text, str) or not text.strip():
        raise StoreInputError("template must be the text of a chat template (jinja) or a path to one.")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise StoreInputError(f"template is {len(text)} characters; a chat template is at most {MAX_TEMPLATE_CHARS}.")

    def refuse(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    marks = ("qfnb-check-user-1", "qfnb-check-assistant-1", "qfnb-check-user-2")
    turns = [{"role": role, "content": mark} for role, mark in zip(("user", "assistant", "user"), marks, strict=True)]
    try:
        rendered = env.from_string(text).render(messages=turns, add_generation_prompt=True, bos_token="",
                                                eos_token="", raise_exception=refuse, tools=None)
    except TemplateError as exc:
        raise StoreInputError(f"template is not a chat template that renders: {exc}.") from None
    except Exception as exc:  # a template's own runtime error (a filter on a wrong type …)
        raise StoreInputError(f"template fails to render a conversation ({type(exc).__name__}).") from None
    if marks[0] not in rendered or marks[2] not in rendered:
        raise StoreInputError("template does not render the conversation's messages (no {{ message['content'] }} "
                              "over messages): it is not a chat template.")
    return text

"""The local platform's OpenAI access: its one OpenAI base URL and a minted key.

A bearer key is minted with the platform's own IAM pair (``credentials.json``, a signed
``/v1/BCE-BEARER/token``: the key never appears on a command line or in a log);
``qfnb.openai_client()`` (:mod:`qfnb._core.runtime.openai_recorded`) is the client built on them.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx

from qfnb._core.backend.discovery import LocalPlatform
from qfnb.protocol.wires.qianfan.routes import BEARER_TOKEN
from qfnb.protocol.wires.qianfan.signing import bce_date, sign

#: how long a minted key is valid (the platform's longest: 30 days)
KEY_SECONDS = 30 * 24 * 3600
API_VERSIONS = ("v1", "v2")


def mint_key(platform: LocalPlatform, seconds: int = KEY_SECONDS) -> str:
    """A bearer key for ``platform``'s OpenAI routes, signed with its IAM pair."""
    url = platform.base_url.rstrip("/") + BEARER_TOKEN
    params = {"expireInSeconds": str(seconds)}
    ts, nonce = bce_date(), str(uuid.uuid4())
    headers = {"host": urlsplit(url).netloc, "content-type": "application/json", "x-bce-date": ts,
               "x-bce-request-id": nonce}
    headers["authorization"] = sign("GET", BEARER_TOKEN, params, headers, platform.access_key,
                                    platform.iam_secret_key, ts)
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        resp = client.get(url, params=params, headers=headers)
    token = resp.json().get("token") if resp.status_code == 200 else None
    if not token:
        raise RuntimeError(f"the local platform at {platform.base_url} did not mint a key (HTTP {resp.status_code})")
    return str(token)


def base_url(platform: LocalPlatform, api: str = "v1") -> str:
    """The OpenAI base URL of ``platform`` (``…/v1``; ``…/v2`` serves the same)."""
    if api not in API_VERSIONS:
        raise ValueError(f"api must be one of {', '.join(API_VERSIONS)}, got {api!r}")
    return f"{platform.base_url.rstrip('/')}/{api}"

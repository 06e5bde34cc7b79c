"""``qfnb.backend()``: where qfnb talks — the embedded local platform or the cloud — and why.

qfnb picks the cloud when any Qianfan credential (or ``QIANFAN_BASE_URL``) is configured, and
otherwise starts its embedded local platform. A wrong ``QIANFAN_AK`` left in the environment
therefore sends every call to the cloud: this names the variables that made the choice (never
their values), so the footer of every magic and a failed connection can say so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from qfnb._core.backend.discovery import read_runtime
from qfnb._core.config import Config
from qfnb.protocol.platform.daemon import CREDENTIALS_FILE, default_data_dir

__all__ = ["Backend", "backend", "connection_hint"]

#: the settings that make qfnb talk to a configured platform, as environment variables
CHOOSERS = ("QIANFAN_API_KEY", "QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY",
            "QIANFAN_ACCESS_TOKEN", "QIANFAN_BEARER_TOKEN", "QIANFAN_BASE_URL")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Backend:
    """Where calls go: ``kind`` (``"local"`` or ``"cloud"``), ``reason`` in words, ``base_url``,
    and ``variables``: the environment variables that chose it (names only)."""

    kind: Literal["local", "cloud"]
    reason: str
    base_url: str
    variables: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The footer's word: ``"local"`` or ``"cloud (QIANFAN_AK set)"``."""
        if self.kind == "local":
            return "local"
        why = ", ".join(self.variables) or "credentials set in code"
        return f"cloud ({why}{' set' if self.variables else ''})"

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason} · {self.base_url}"


def backend(config: Config | None = None) -> Backend:
    """Where qfnb talks with ``config`` (default: the environment), and why. Starts nothing.

    The local platform is told by its credential (the data dir's platform's own keys) or its address
    (the running daemon's), never by a loopback host alone: a cloud key sent through a proxy on this
    machine still reaches the cloud, and is billed there."""
    cfg = config if config is not None else Config.from_env()
    chosen = tuple(v for v in CHOOSERS if os.environ.get(v))
    if cfg.embedded or not cfg.is_configured:
        return Backend("local", "no Qianfan credentials are set, so qfnb runs its embedded local platform",
                       cfg.base_url if cfg.embedded else "the data dir's local platform daemon")
    v2 = cfg.api_version == 2
    api, url = ("its v2 API", cfg.console_api_base_url + "/v2") if v2 else ("its v1 API", cfg.base_url)
    named = ", ".join(chosen) or "config"
    if _local_keys() & _keys_of(cfg):
        return Backend("local", f"the credentials are the local platform's own ({named})", url, chosen)
    if _keys_of(cfg) == set() and _is_daemon(url):
        return Backend("local", f"the address is the local platform's ({named})", url, chosen)
    how = f"{', '.join(chosen)} {'is' if len(chosen) == 1 else 'are'} set" if chosen else "credentials are set in code"
    host = urlparse(url).hostname or ""
    through = f" through {url}, an address on this machine (a proxy)" if host in _LOCAL_HOSTS else ""
    return Backend("cloud", f"{how}, so qfnb talks to the Qianfan cloud, {api}{through} (unset them to use the "
                   "local platform)", url, chosen)


def _keys_of(cfg: Config) -> set[str]:
    """The key ids a config sends (never its secrets)."""
    return {k for k in (cfg.ak, cfg.bearer_token, cfg.access_key, cfg.access_token) if k}


def _local_keys() -> set[str]:
    """The data dir's local platform's key ids (its credentials file, 0600), or none."""
    try:
        creds = json.loads((default_data_dir() / CREDENTIALS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(creds[k]) for k in ("api_key", "access_key") if isinstance(creds, dict) and creds.get(k)}


def _is_daemon(url: str) -> bool:
    """Whether ``url`` is the data dir's running daemon's address."""
    info = read_runtime()
    return info is not None and url.rstrip("/").startswith(info.url.rstrip("/"))


def connection_hint(exc: BaseException | None, config: Config | None = None) -> str:
    """For a failed connection (DNS, refused, reset) to the cloud: which variable chose the cloud."""
    if not isinstance(exc, ConnectionError | OSError):
        return ""
    where = backend(config)
    if where.kind != "cloud":
        return ""
    return f" — qfnb talks to the cloud ({where.base_url}) because {where.reason.split(', so')[0]}; " \
           f"unset {' and '.join(where.variables) or 'them'} to use the local platform"

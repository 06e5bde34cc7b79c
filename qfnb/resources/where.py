"""``qfnb.backend()``: where qfnb talks — the embedded local platform or the cloud — and why.

qfnb picks the cloud when any Qianfan credential (or ``QIANFAN_BASE_URL``) is configured, and
otherwise starts its embedded local platform. A wrong ``QIANFAN_AK`` left in the environment
therefore sends every call to the cloud: this names the variables that made the choice (never
their values), so the footer of every magic and a failed connection can say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from qfnb._core.config import Config

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
    """Where qfnb talks with ``config`` (default: the environment), and why. Starts nothing."""
    cfg = config if config is not None else Config.from_env()
    chosen = tuple(v for v in CHOOSERS if os.environ.get(v))
    if cfg.embedded or not cfg.is_configured:
        return Backend("local", "no Qianfan credentials are set, so qfnb runs its embedded local platform",
                       cfg.base_url if cfg.embedded else "the data dir's local platform daemon")
    host = urlparse(cfg.base_url).hostname or ""
    if host in _LOCAL_HOSTS:
        return Backend("local", f"the platform's address is on this machine ({', '.join(chosen) or 'config'})",
                       cfg.base_url, chosen)
    how = f"{', '.join(chosen)} {'is' if len(chosen) == 1 else 'are'} set" if chosen else "credentials are set in code"
    v2 = cfg.api_version == 2
    api, url = ("its v2 API", cfg.console_api_base_url + "/v2") if v2 else ("its v1 API", cfg.base_url)
    return Backend("cloud", f"{how}, so qfnb talks to the Qianfan cloud, {api} (unset them to use the local platform)",
                   url, chosen)


def connection_hint(exc: BaseException | None, config: Config | None = None) -> str:
    """For a failed connection (DNS, refused, reset) to the cloud: which variable chose the cloud."""
    if not isinstance(exc, ConnectionError | OSError):
        return ""
    where = backend(config)
    if where.kind != "cloud":
        return ""
    return f" — qfnb talks to the cloud ({where.base_url}) because {where.reason.split(', so')[0]}; " \
           f"unset {' and '.join(where.variables) or 'them'} to use the local platform"

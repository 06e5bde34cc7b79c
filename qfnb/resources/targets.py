"""Where a job runs: ``"local"`` (the embedded platform), ``"qianfan"`` (the cloud's batch jobs) or
``"ray://HOST:DASHBOARD_PORT"`` (a Ray cluster, through its Jobs API). ``QFNB_TARGET`` sets the default;
a bad target is refused by name before anything is sent."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from qfnb._core.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["ENV", "LOCAL", "QIANFAN", "RAY", "JobTarget", "check_platform", "parse_target"]

#: the environment variable naming the default target
ENV = "QFNB_TARGET"
LOCAL, QIANFAN, RAY = "local", "qianfan", "ray"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class JobTarget:
    """A parsed target: ``kind`` is ``local``, ``qianfan`` or ``ray`` (then ``host`` and ``port``)."""

    kind: str
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"ray://{self.host}:{self.port}" if self.kind == RAY else self.kind

    @property
    def on_ray(self) -> bool:
        return self.kind == RAY

    @property
    def dashboard_url(self) -> str:
        """The Ray dashboard's HTTP address (what ``JobSubmissionClient`` is given)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def same_machine(self) -> bool:
        """A head on this machine's loopback: its jobs can run this interpreter and read its files."""
        return self.kind == RAY and self.host in _LOOPBACK


def parse_target(value: str | JobTarget | None, *, field: str = "target") -> JobTarget | None:
    """``value`` (else ``QFNB_TARGET``) as a :class:`JobTarget`; None when neither names one (the
    config's own platform). A malformed value raises ValidationError naming ``field``."""
    if isinstance(value, JobTarget):
        return value
    if value is None or value == "":
        value, field = os.environ.get(ENV) or None, ENV
        if value is None:
            return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be 'local', 'qianfan' or 'ray://HOST:DASHBOARD_PORT', got {value!r}")
    text = value.strip()
    if text.lower() in (LOCAL, QIANFAN):
        return JobTarget(text.lower())
    if not text.lower().startswith("ray://"):
        raise ValidationError(field, f"{text!r} is not a target: give 'local', 'qianfan' or "
                                     "'ray://HOST:DASHBOARD_PORT' (a Ray head's dashboard, 8265 by default)")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port is None or port <= 0 or parts.path not in ("", "/") or parts.query:
        raise ValidationError(field, f"{text!r} is malformed: a Ray target is 'ray://HOST:DASHBOARD_PORT' "
                                     "(the dashboard's port, 8265 by default), nothing after the port")
    return JobTarget(RAY, parts.hostname, port)


def check_platform(target: JobTarget | None, config: Config) -> None:
    """``local`` and ``qianfan`` name the platform ``config`` must point at: refused (naming the target)
    when it points at the other one."""
    if target is None or target.on_ray:
        return
    if target.kind == LOCAL and not config.embedded:
        raise ValidationError("target", "'local' runs on the embedded platform, but this client's config "
                                        "names Qianfan credentials: unset them, or pass target='qianfan'")
    if target.kind == QIANFAN and config.embedded:
        raise ValidationError("target", "'qianfan' runs on the Qianfan cloud, but no Qianfan credentials are "
                                        "configured (QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY, or a v2 API key)")

"""Which platform the client talks to when no credentials are configured. A room of ``qfnb._core``:
may import ``qfnb.protocol`` and the rooms below it (transport, errors).

:class:`Access` is what the client relies on: how to reach the platform (base URL, keys,
default models). The data dir's local platform daemon (:class:`qfnb._core.backend.daemon.LocalDaemon`)
finds or starts one, reads its status and stops it, in rooms by concern:

* :mod:`.discovery`: the runtime file, the credentials file, the daemons this process uses;
* :mod:`.process`: supervision of the detached process (start lock, spawn, liveness, log);
* :mod:`.control`: the daemon's control routes (``/healthz``, ``/qfnb/status``,
  ``/qfnb/shutdown``), sent through the transport seam (:mod:`qfnb._core.transport`).

:func:`qfnb._core.config.set_default_backend` is the one hook that replaces it (tests install an
in-process platform there). Nothing here imports :mod:`qfnb.local`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["Access", "DaemonError"]


class DaemonError(RuntimeError):
    """The local platform daemon could not be started, reached or stopped."""


class Access(Protocol):
    """What the client needs of a running platform: where it is and the keys it accepts."""

    @property
    def base_url(self) -> str: ...  # v1 inference, OAuth, console, IAM and BOS all answer here
    @property
    def api_key(self) -> str: ...  # the OAuth pair (QIANFAN_AK / QIANFAN_SK roles)
    @property
    def secret_key(self) -> str: ...
    @property
    def access_key(self) -> str: ...  # the IAM pair (QIANFAN_ACCESS_KEY / QIANFAN_SECRET_KEY roles)
    @property
    def iam_secret_key(self) -> str: ...
    @property
    def default_models(self) -> Mapping[str, str]: ...  # {"chat": ..., "completions": ..., ...}

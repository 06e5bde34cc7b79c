"""The local platform daemon's contract: where its files live and what its runtime file says.

The client (``qfnb._core.backend.daemon``) and the daemon (``qfnb.local.server.daemon``) meet here and at the
wire: one ``qfnb serve --daemon`` per data dir, found through ``<data_dir>/runtime.json``
(mode 0600), like Jupyter's runtime files or Ollama's single background server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUNTIME_FILE = "runtime.json"
CREDENTIALS_FILE = "credentials.json"
LOCK_FILE = "daemon.lock"
LOG_FILE = "daemon.log"
#: control routes of the daemon; they need the runtime file's token in ``CONTROL_HEADER``
STATUS_ROUTE = "/qfnb/status"
SHUTDOWN_ROUTE = "/qfnb/shutdown"
CONTROL_HEADER = "X-Qfnb-Control"


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$QFNB_DATA_DIR`` or ``~/.qfnb``."""
    env = os.environ if env is None else env
    raw = env.get("QFNB_DATA_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".qfnb"


def default_model_cache(env: Mapping[str, str] | None = None) -> Path:
    """``$QFNB_MODEL_CACHE`` or ``$XDG_CACHE_HOME/qfnb/models`` (``~/.cache/qfnb/models``)."""
    env = os.environ if env is None else env
    raw = env.get("QFNB_MODEL_CACHE")
    if raw:
        return Path(raw).expanduser()
    base = env.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "qfnb" / "models"


@dataclass(frozen=True)
class RuntimeInfo:
    """What a running daemon writes to ``runtime.json``."""

    url: str
    pid: int
    version: str
    started: float
    #: a random token for the control routes; the file is 0600, so only its owner can read it
    control_token: str
    default_models: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"RuntimeInfo(url={self.url!r}, pid={self.pid}, version={self.version!r}, started={self.started})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeInfo:
        """Parse a runtime file's JSON; raises ``ValueError`` on a malformed one."""
        try:
            return cls(url=str(data["url"]), pid=int(data["pid"]), version=str(data["version"]),
                       started=float(data["started"]), control_token=str(data["control_token"]),
                       default_models={str(k): str(v) for k, v in dict(data.get("default_models") or {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed runtime file: {exc!r}") from exc


@dataclass(frozen=True)
class EngineState:
    """One engine of the daemon's status (``GET /qfnb/status`` → ``engines``)."""

    model: str
    endpoint: str
    state: str  # "starting" | "ready" | "stopped" | "failed"
    since: float | None = None  # Unix time the state began
    slots: int = 0
    busy: int = 0
    queued: int = 0

    @classmethod
    def from_dict(cls, raw: Any) -> EngineState | None:
        """Parse one entry; None for a malformed one (an older or newer daemon)."""
        if not isinstance(raw, dict) or not raw.get("model") or not raw.get("state"):
            return None

        def num(key: str) -> int:
            try:
                return int(raw.get(key) or 0)
            except (TypeError, ValueError):
                return 0

        try:
            since = float(raw["since"]) if raw.get("since") is not None else None
        except (TypeError, ValueError):
            since = None
        return cls(model=str(raw["model"]), endpoint=str(raw.get("endpoint") or ""), state=str(raw["state"]),
                   since=since, slots=num("slots"), busy=num("busy"), queued=num("queued"))

"""Finding a data dir's daemon: its runtime file, its credentials, the ones this process uses.

The daemon writes ``<data_dir>/runtime.json`` (mode 0600) once it answers, and generates
``<data_dir>/credentials.json`` once; both are read here, never written.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qfnb._core.backend import DaemonError
from qfnb.protocol.platform.daemon import CREDENTIALS_FILE, RUNTIME_FILE, RuntimeInfo, default_data_dir

__all__ = ["LocalPlatform", "known", "known_lock", "load_platform", "read_runtime", "root"]


@dataclass(frozen=True)
class LocalPlatform:
    """A running daemon: where it is and how to authenticate to it (an :class:`~qfnb._core.backend.Access`)."""

    base_url: str
    api_key: str
    secret_key: str
    access_key: str
    iam_secret_key: str
    data_dir: Path
    pid: int
    version: str
    default_models: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"LocalPlatform(base_url={self.base_url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r}, "
                "secrets=***)")


#: the daemons this process found or started, by resolved data dir
known: dict[Path, LocalPlatform] = {}
known_lock = threading.Lock()


def root(data_dir: Path | str | None) -> Path:
    """The resolved data dir: ``data_dir``, else ``$QFNB_DATA_DIR`` or ``~/.qfnb``."""
    return (Path(data_dir) if data_dir is not None else default_data_dir()).expanduser().resolve()


def read_runtime(data_dir: Path | str | None = None) -> RuntimeInfo | None:
    """The runtime file of ``data_dir``'s daemon, or None when there is none (or it is unreadable)."""
    try:
        return RuntimeInfo.from_dict(json.loads((root(data_dir) / RUNTIME_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def load_platform(data_dir: Path, info: RuntimeInfo) -> LocalPlatform:
    """The :class:`LocalPlatform` of a running daemon: ``info`` plus the data dir's credentials."""
    try:
        creds = json.loads((data_dir / CREDENTIALS_FILE).read_text(encoding="utf-8"))
        keys = {k: str(creds[k]) for k in ("api_key", "secret_key", "access_key", "iam_secret_key")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DaemonError(f"the daemon's credentials file {data_dir / CREDENTIALS_FILE} is unreadable: "
                          f"{exc!r}") from None
    return LocalPlatform(base_url=info.url, data_dir=data_dir, pid=info.pid, version=info.version,
                         default_models=dict(info.default_models), **keys)

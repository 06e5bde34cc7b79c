"""Settings of the local platform: data dir, credentials, aliases, worker command."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from qfnb.local.engines.registry import EngineOptions
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.files import write_private_json

__all__ = ["Credentials", "Settings", "default_data_dir"]


def _parse_aliases(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"QFNB_MODEL_ALIASES must be a JSON object of name -> served model: {exc}") from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("QFNB_MODEL_ALIASES must be a JSON object mapping names to served model names")
    return {k.lower(): v for k, v in value.items()}


def _positive(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    if not str(raw).isdigit() or int(str(raw)) < 1:
        raise ValueError(f"{key} must be a whole number >= 1, got {raw!r}")
    return int(str(raw))


def _seconds(env: Mapping[str, str], key: str, default: float, unit: str = "seconds") -> float:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        value = float(str(raw))
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{key} must be a number of {unit} >= 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Credentials:
    """The OAuth pair (api_key/secret_key) and the IAM pair (access_key/iam_secret_key)."""

    api_key: str
    secret_key: str
    access_key: str
    iam_secret_key: str

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key!r}, access_key={self.access_key!r}, secrets=***)"

    @classmethod
    def generate(cls) -> Credentials:
        """A fresh random pair of pairs."""
        return cls(api_key="qfnb-ak-" + secrets.token_hex(8), secret_key=secrets.token_urlsafe(24),
                   access_key="qfnb-access-" + secrets.token_hex(8), iam_secret_key=secrets.token_urlsafe(24))

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        """Read ``path`` (JSON) or generate a pair and write it there with mode 0600."""
        return cls.create_if_absent(path)[0]

    @classmethod
    def create_if_absent(cls, path: Path) -> tuple[Credentials, bool]:
        """``(credentials, created)``: read from ``path``, or generated and written there (0600)."""
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{f.name: str(data[f.name]) for f in fields(cls)}), False
        creds = cls.generate()
        if not write_private_json(path, asdict(creds), exclusive=True):
            return cls.create_if_absent(path)  # a concurrent first start keeps one pair
        return creds, True


@dataclass(frozen=True)
class Settings:
    """Everything the app needs besides the engine registry.

    ``worker_command`` is the argv prefix that runs one training task (the job dir is
    appended); tests swap in a fast stand-in.
    """

    data_dir: Path
    credentials: Credentials
    aliases: Mapping[str, str] = field(default_factory=dict)
    text2image_model_dir: Path | None = None
    token_ttl: int = 2_592_000
    worker_command: tuple[str, ...] = (sys.executable, "-m", "qfnb.local.training.process.worker")
    max_concurrent_training: int = 1
    #: batch-inference jobs that run at once (a thread each); the rest wait in line with no thread
    max_batch_jobs: int = 4
    #: batch-inference jobs that may wait in line; one more is refused (HTTP 429 naming this cap)
    max_waiting_batch_jobs: int = 10_000
    poll_interval: float = 0.5
    #: Hugging Face dirs to train instead of a base model's bundled weights (lower-case name -> dir)
    model_paths: Mapping[str, Path] = field(default_factory=dict)
    #: how engines run (slots, queue, idle time, external engines, the watchdog's stall and compute
    #: deadline: ``QFNB_ENGINE_STALL_SECONDS``, ``QFNB_ENGINE_REQUEST_SECONDS``): ``EngineOptions``; None = defaults
    engine_options: Any = None
    #: seconds of silence after which a model call hears a heartbeat (``QFNB_HEARTBEAT_S``; 0: none)
    heartbeat: float = 10.0
    #: seconds a keyed model call goes on with nobody listening, for its retry to attach
    #: (``QFNB_RETRY_GRACE_S``; 0: ``Idempotency-Key`` is ignored and a retry runs again)
    retry_grace: float = 30.0
    #: count every call in ``/metrics`` and keep its span (``QFNB_OBSERVE=0`` turns both off)
    observe: bool = True
    #: stored chat completions and stored responses (``store: true``) kept of each: the last this many
    #: (``QFNB_STORE_MAX_RECORDS``), none older than this many days (``QFNB_STORE_RETENTION_DAYS``; 0: no
    #: age limit). OpenAI keeps them 30 days.
    store_max_records: int = 10_000
    store_retention_days: float = 30.0

    def __repr__(self) -> str:
        return f"Settings(data_dir={str(self.data_dir)!r}, aliases={dict(self.aliases)!r})"

    @classmethod
    def from_env(cls, data_dir: Path | None = None, credentials: Credentials | None = None,
                 env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``QFNB_*`` variables; credentials default to ``<data_dir>/credentials.json``."""
        env = os.environ if env is None else env
        root = Path(data_dir) if data_dir is not None else default_data_dir(env)
        root.mkdir(parents=True, exist_ok=True)
        creds = credentials or Credentials.load_or_create(root / "credentials.json")
        t2i = env.get("QFNB_TEXT2IMAGE_MODEL_DIR")

        return cls(data_dir=root, credentials=creds, aliases=_parse_aliases(env.get("QFNB_MODEL_ALIASES")),
                   text2image_model_dir=Path(t2i).expanduser() if t2i else None,
                   engine_options=EngineOptions.from_env(env),
                   max_batch_jobs=_positive(env, "QFNB_BATCH_JOBS", 4),
                   max_waiting_batch_jobs=_positive(env, "QFNB_BATCH_WAITING", 10_000),
                   heartbeat=_seconds(env, "QFNB_HEARTBEAT_S", 10.0),
                   retry_grace=_seconds(env, "QFNB_RETRY_GRACE_S", 30.0),
                   observe=env.get("QFNB_OBSERVE", "1").strip().lower() not in ("0", "false", "no", "off"),
                   store_max_records=_positive(env, "QFNB_STORE_MAX_RECORDS", 10_000),
                   store_retention_days=_seconds(env, "QFNB_STORE_RETENTION_DAYS", 30.0, "days"))


def make_private(root: Path) -> int:
    """Tighten ``root`` to 0700 and everything under it to 0700 (dirs) / 0600 (files), as an
    older version may have left them readable by others; returns how many were changed."""
    changed = 0
    for path in [root, *root.rglob("*")]:
        with contextlib.suppress(OSError):
            if path.is_symlink():
                continue
            mode = path.stat().st_mode & 0o777
            want = 0o700 if path.is_dir() else mode & 0o700
            if mode != want:
                path.chmod(want)
                changed += 1
    return changed

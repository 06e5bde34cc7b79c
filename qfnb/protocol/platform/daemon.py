"""The local platform daemon's contract: where its files live, what its runtime file says and
what its status route answers.

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
#: ``qfnb serve --daemon``'s exit code when another daemon holds the data dir's lock (one dying, or
#: one another client has just started)
SERVED_ELSEWHERE = 3
LOG_FILE = "daemon.log"
#: control routes of the daemon; they need the runtime file's token in ``CONTROL_HEADER``
STATUS_ROUTE = "/qfnb/status"
SHUTDOWN_ROUTE = "/qfnb/shutdown"
#: the model store (``qfnb models``): GET list, POST add, DELETE /{name}, POST /{name}/unload
MODELS_ROUTE = "/qfnb/models"
#: the roles a model added to the store can play (``qfnb models add --role``; ``completion`` is the
#: plain-text completions API, ``rerank`` a cross-encoder served by llama-server's reranking mode)
MODEL_ROLES = ("chat", "completion", "embeddings", "finetune-base", "rerank", "text2image")
CONTROL_HEADER = "X-Qfnb-Control"
#: on an inference answer: the model that served it (the request may name an alias, e.g. ``ernie-lite-8k``)
MODEL_HEADER = "X-Qfnb-Model"
#: on an inference answer: a word about the model choice (the tool model picked for a request that named
#: no model, or a model that calls tools unreliably); ASCII, as a header must be
NOTICE_HEADER = "X-Qfnb-Notice"


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
    #: a random token for the control routes; the file is 0600, so only its owner can read it (not in the repr)
    control_token: str = field(repr=False)
    default_models: dict[str, str] = field(default_factory=dict, repr=False)

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


def _num(raw: Mapping[str, Any], key: str, kind: type[int] | type[float], default: Any = 0) -> Any:
    """``raw[key]`` as ``kind``; ``default`` when it is missing or malformed (an older or newer daemon)."""
    value = raw.get(key)
    if value is None or isinstance(value, bool):
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        return default


def _counts(raw: Any) -> dict[str, int]:
    """A ``{name: count}`` object's int counts (none when it is missing: an older daemon)."""
    return {str(k): int(v) for k, v in raw.items() if isinstance(v, int)} if isinstance(raw, Mapping) else {}


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
    pid: int | None = None
    adapters: int = 0
    starts: int = 0  # processes the engine started (a deploy that needs none adds none)
    loads: int = 0  # adapters loaded into a running process (without a start)

    @classmethod
    def from_dict(cls, raw: Any) -> EngineState | None:
        """Parse one entry; None for a malformed one."""
        if not isinstance(raw, Mapping) or not raw.get("model") or not raw.get("state"):
            return None
        return cls(model=str(raw["model"]), endpoint=str(raw.get("endpoint") or ""), state=str(raw["state"]),
                   since=_num(raw, "since", float, None), slots=_num(raw, "slots", int), busy=_num(raw, "busy", int),
                   queued=_num(raw, "queued", int), pid=_num(raw, "pid", int, None),
                   adapters=_num(raw, "adapters", int), starts=_num(raw, "starts", int),
                   loads=_num(raw, "loads", int))


@dataclass(frozen=True)
class RunningJob:
    """A fine-tune run or an evaluation under way (``jobsRunning``)."""

    kind: str  # "fine-tune" | "evaluation"
    id: str
    status: str

    @classmethod
    def from_dict(cls, raw: Any) -> RunningJob | None:
        if not isinstance(raw, Mapping) or not raw.get("id"):
            return None
        return cls(kind=str(raw.get("kind") or "job"), id=str(raw["id"]), status=str(raw.get("status") or ""))


@dataclass(frozen=True)
class DaemonStatus:
    """What ``GET /qfnb/status`` answers (camelCase on the wire) and ``qfnb status`` shows.

    Parsing is lenient: a key an older daemon does not send reads as its default."""

    pid: int = 0
    version: str = ""
    uptime_seconds: float = 0.0
    data_dir: str = ""
    models_loaded: tuple[str, ...] = ()
    engines: tuple[EngineState, ...] = ()
    jobs_running: tuple[RunningJob, ...] = ()
    memory_bytes: int = 0
    child_memory_bytes: int = 0
    #: model calls this daemon's engines admitted since it started, by engine (every try of a call a
    #: client retried; ``fine-tune``: training runs)
    model_calls: Mapping[str, int] = field(default_factory=dict)
    #: of those, the calls answered (``/metrics``' 2xx requests; a batch job's rows from its record),
    #: by model: what the usage ledger counts as calls to this platform
    answered_calls: Mapping[str, int] = field(default_factory=dict)
    #: where the client reached it (from the runtime file; not sent by the daemon)
    url: str = ""

    @property
    def model_calls_total(self) -> int:
        """Every model call counted at the platform: engine requests and fine-tune runs."""
        return sum(self.model_calls.values())

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "version": self.version, "uptimeSeconds": self.uptime_seconds,
                "dataDir": self.data_dir, "modelsLoaded": list(self.models_loaded),
                "engines": [asdict(e) for e in self.engines], "jobsRunning": [asdict(j) for j in self.jobs_running],
                "memoryBytes": self.memory_bytes, "childMemoryBytes": self.child_memory_bytes,
                "modelCalls": dict(self.model_calls), "answeredCalls": dict(self.answered_calls)}

    @classmethod
    def from_dict(cls, raw: Any, *, url: str = "") -> DaemonStatus:
        raw = raw if isinstance(raw, Mapping) else {}
        loaded = raw.get("modelsLoaded")
        engines = raw.get("engines")
        jobs = raw.get("jobsRunning")
        return cls(pid=_num(raw, "pid", int), version=str(raw.get("version") or ""),
                   uptime_seconds=_num(raw, "uptimeSeconds", float, 0.0), data_dir=str(raw.get("dataDir") or ""),
                   models_loaded=tuple(map(str, loaded)) if isinstance(loaded, list) else (),
                   engines=tuple(e for e in map(EngineState.from_dict, engines) if e is not None)
                   if isinstance(engines, list) else (),
                   jobs_running=tuple(j for j in map(RunningJob.from_dict, jobs) if j is not None)
                   if isinstance(jobs, list) else (),
                   memory_bytes=_num(raw, "memoryBytes", int), child_memory_bytes=_num(raw, "childMemoryBytes", int),
                   model_calls=_counts(raw.get("modelCalls")), answered_calls=_counts(raw.get("answeredCalls")),
                   url=url)

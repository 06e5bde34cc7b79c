"""The platform object the routes share: settings, store, objects, engines, supervisor."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from qfnb.local.domain.records.meter import Meter
from qfnb.local.domain.state.datasets import ObjectStore
from qfnb.local.domain.state.seed_names import seed_model
from qfnb.local.domain.state.store import Kept, Store
from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training.fine_tunes import run_checkpoint
from qfnb.local.domain.training.jobs import Supervisor
from qfnb.local.engines.api import RegistryLike, ServedLike
from qfnb.local.engines.store.model_store import ModelStore
from qfnb.local.settings import Settings, make_private
from qfnb.protocol.console.enums import ServiceStatus
from qfnb.protocol.console.training import TRAINED_TOKEN_KEYS
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.wires.qianfan.routes import builtin_endpoint

log = logging.getLogger("qfnb.local")

#: endpoint prefix of adapters registered only to evaluate a model version
EVAL_PREFIX = "eval-"


class Platform:
    """Shared state of one running local platform."""

    def __init__(self, settings: Settings, registry: RegistryLike, store: Store | None = None,
                 supervisor: Supervisor | None = None) -> None:
        self.settings = settings
        self.registry = registry
        kept = Kept(settings.store_max_records, settings.store_retention_days * 86_400 or None)
        self.store = store or Store(settings.data_dir / "platform.sqlite3", kept={
            "chat_completions": kept, "responses": kept})
        self.objects = ObjectStore(settings.data_dir / "objects")
        self.models = ModelStore(data_dir=settings.data_dir)  # where a finished run's checkpoints are kept
        self.supervisor = supervisor or Supervisor(self.store, settings.worker_command,
                                                   max_concurrent=settings.max_concurrent_training,
                                                   poll_interval=settings.poll_interval,
                                                   models=self.models)
        self.supervisor.on_finished = self._trained
        #: the one usage point: /metrics and the trace table (domain.records.meter)
        self.meter = Meter(settings.data_dir)
        self.meter.calls.durable = self._batch_usage
        self._deployed: dict[str, ServedLike] = {}
        self._checkpoints: dict[str, tuple[Path, ServedLike]] = {}  # NAME@which -> its adapter, served
        self._loaded: set[str] = set()
        self._uris: tuple[int, set[str]] | None = None
        self._deploys = 0  # services deployed here so far (a stamp of what resolve read)
        #: (api type, name) -> what resolve found in memory for it, and the state it found it in
        self._resolved: dict[tuple[str, str], tuple[tuple[int, int, int], ServedLike]] = {}
        self._lock = threading.Lock()
        #: the reward long polls waiting now (domain.training.rewards; changed on the event loop only)
        self.reward_polls = 0

    # ---- lifecycle -----------------------------------------------------------------------

    def startup(self) -> None:
        """Make the data dir private, recover runs, re-register deployed services, start supervising."""
        changed = make_private(self.settings.data_dir)
        if changed:
            log.warning("made %d files and folders under %s private to their owner (mode 0600/0700)", changed,
                        self.settings.data_dir)
        self.supervisor.start()
        services = self.store.all("services", lambda s: s.get("status") in (
            ServiceStatus.SERVING.value, ServiceStatus.DEPLOYING.value))
        for svc in services:  # re-registering may convert adapters: show Deploying until it is done
            self.store.update("services", svc["id"], status=ServiceStatus.DEPLOYING.value)
        if services:
            threading.Thread(target=lambda: [self.deploy(s) for s in services], name="qfnb-redeploy",
                             daemon=True).start()

    def shutdown(self) -> None:
        try:
            self.supervisor.shutdown()
            self.registry.close()  # stop the engine processes with the platform
        finally:
            self.meter.close()  # the spans still queued are written, whatever else failed

    def _batch_usage(self) -> dict[tuple[str, str], list[int]]:
        """What the batch jobs of this data dir were paid for, per model (``/metrics``' ``batch``
        counts): the store's running totals of the jobs' own ``usageByModel`` (which a resumed job
        recounts from its files), so the counts go on across restarts and kills, equal the jobs'
        ``usage``, and a scrape reads one small table, not every job."""
        return {("batch", model): counts for model, counts in self.store.usage_totals("batches").items()}

    def _trained(self, run: dict[str, Any], metrics: dict[str, Any]) -> None:
        """A fine-tune finished: its trained tokens counted, as the client's ledger row counts them."""
        tokens = next((int(v) for k in TRAINED_TOKEN_KEYS if isinstance(v := metrics.get(k), int | float)
                       and not isinstance(v, bool) and v >= 0), 0)
        started = float(run.get("started") or run.get("created") or time.time())
        self.meter.record_training(str(run.get("baseModel") or ""), tokens, started, time.time() - started,
                                   job=f"fine-tune {run.get('sid') or run.get('id') or ''}".strip())

    # ---- served models -------------------------------------------------------------------

    def base_models(self) -> list[ServedLike]:
        """The registry's own models: not deployed services, not evaluation-only adapter endpoints, not
        the checkpoints asked for by ``NAME@step``."""
        hidden = self._service_uris()
        return [m for m in self.registry.served_models() if m.endpoint.lower() not in hidden
                and not m.endpoint.startswith(EVAL_PREFIX) and "@" not in m.endpoint]

    def _service_uris(self) -> set[str]:
        """Every service's endpoint (lower case), re-read only when services changed."""
        generation = self.store.generation["services"]
        cached = self._uris
        if cached is None or cached[0] != generation:
            cached = self._uris = (generation, {s["uri"].lower() for s in self.store.all("services")})
        return cached[1]

    def served(self, api_type: str | None = None) -> list[ServedLike]:
        """Every model served now (base models and deployed services), optionally by api type."""
        out: dict[str, ServedLike] = {}
        for m in [*self.base_models(), *self._deployed.values()]:
            if api_type is None or api_type in m.api_types:
                out.setdefault(f"{api_type}:{m.endpoint.lower()}", m)
        return list(out.values())

    def resolve(self, api_type: str, endpoint: str) -> ServedLike:
        """The served model behind ``/{api_type}/{endpoint}`` (names, endpoints and aliases match
        case-insensitively); BodyError 336005 listing what is served otherwise."""
        key = endpoint.strip("/").lower()
        stamp = self._resolution_stamp()  # (read before what it stamps: a change meanwhile makes it stale)
        models = self.served(api_type)
        found = _named(models, key) or self._aliased(api_type, key, models)
        if found is not None and stamp is not None:
            self._resolved[(api_type, key)] = (stamp, found)
        found = (found or seed_model(api_type, key, [m for m in self.base_models() if api_type in m.api_types])
                 or self._deployed_elsewhere(api_type, key) or self._checkpoint(api_type, key)
                 or self._fine_tuned(api_type, key))
        if found is not None:
            return found
        listing = ", ".join(f"{m.name} (/{api_type}/{m.endpoint})" for m in models) or "none"
        hint = (" Cloud models such as ERNIE are not available offline; set QFNB_MODEL_ALIASES, e.g. "
                '{"ERNIE-Lite-8K": "Qwen2.5-Coder-0.5B-Instruct"}, to map a name onto a local model.')
        raise BodyError("endpoint", f"API name not exist: /{api_type}/{endpoint} is not served by the local "
                        f"platform. It serves for {api_type}: {listing}.{hint}", ErrorCode.API_NAME_NOT_EXIST)

    def resolved(self, api_type: str, endpoint: str) -> ServedLike | None:
        """What :meth:`resolve` found for this name among the models served, if nothing it read has
        changed since: no store read, nothing that blocks, so the event loop may ask (None: call
        :meth:`resolve` in a thread)."""
        hit = self._resolved.get((api_type, endpoint.strip("/").lower()))
        return hit[1] if hit is not None and hit[0] == self._resolution_stamp() else None

    def _resolution_stamp(self) -> tuple[int, int, int] | None:
        """What a name's resolution depends on: the services (their generation in the store), the
        registry's models and the services deployed here (None: the registry cannot tell without a
        blocking step)."""
        generation = self.registry.generation()
        return None if generation is None else (self.store.generation["services"], generation, self._deploys)

    def _aliased(self, api_type: str, key: str, models: list[ServedLike]) -> ServedLike | None:
        """The model ``QFNB_MODEL_ALIASES`` maps ``key`` (a name or its built-in endpoint) onto."""
        for alias, target in self.settings.aliases.items():
            if key == alias or key == (builtin_endpoint(api_type, alias) or "").lower():
                found = _named(models, target.lower())
                if found is not None:
                    return found
        return None

    def _deployed_elsewhere(self, api_type: str, key: str) -> ServedLike | None:
        """A service deployed by another server on this data dir: registered here too (may block)."""
        if api_type not in ("chat", "completions") or key in self._deployed:
            return None
        for svc in self.store.all("services", lambda s: s.get("uri", "").lower() == key
                                  and s.get("status") == ServiceStatus.SERVING.value):
            if self.deploy(svc).get("status") == ServiceStatus.SERVING.value:
                return self._deployed[key]
        return None

    def _checkpoint(self, api_type: str, key: str) -> ServedLike | None:
        """``NAME@best``, ``NAME@last``, ``NAME@step-8``: that checkpoint of the fine-tune behind service
        NAME (its endpoint), model NAME (its latest trained version) or task NAME (``task-…``, before
        anything is published: how a trainer scores each checkpoint), served from the engine that
        already has every checkpoint of the run (BodyError naming the steps there are)."""
        name, at, which = key.rpartition("@")
        if not at or api_type not in ("chat", "completions"):
            return None
        services = self.store.all("services", lambda s: s.get("uri", "").lower() == name)
        versions = [v for s in services if (v := self.store.get("versions", s["modelVersionId"])) is not None]
        if not versions:
            models = {m["id"] for m in self.store.all("models", lambda m: str(m.get("modelName", "")).lower() == name)}
            versions = self.store.all("versions", lambda v: v.get("modelId") in models and v.get("runId") is not None)
        if versions:
            run = self.store.get("runs", versions[-1].get("runId"))
            if run is None:
                raise BodyError("endpoint", f"{name} was not trained on this platform: it has no checkpoints")
        else:
            run = self.store.get("runs", name) if name.startswith("task-") else None
            if run is None:
                return None
        chosen = run_checkpoint(run, which, "endpoint", f"{key}: ")
        return self._run_adapter(key, run, Path(str(chosen["path"])))

    def _run_adapter(self, key: str, run: dict[str, Any], path: Path) -> ServedLike:
        """``path`` (an adapter of ``run``) served under ``key``, registered once."""
        with self._lock:
            cached = self._checkpoints.get(key)
        if cached is not None and cached[0] == path:
            return cached[1]
        served = self.registry.register_adapter(key, run["baseModel"], path, _adapters_of(run))
        with self._lock:
            self._checkpoints[key] = (path, served)
        return served

    def _fine_tuned(self, api_type: str, key: str) -> ServedLike | None:
        """An OpenAI fine-tuning job's ``fine_tuned_model`` (``ft:<base>:local:<suffix>:<id>``, lower
        case here) once the job succeeded, or one of its checkpoints (``…:ckpt-step-N``), served from
        the engine that has every checkpoint of the run (domain.training.openai_fine_tuning names them)."""
        if not key.startswith("ft:") or api_type not in ("chat", "completions"):
            return None
        model, at, step = key.rpartition(":ckpt-step-")
        model = model if at else key
        runs = self.store.all("runs", lambda r: str((r.get("openai") or {}).get("fine_tuned_model", "")).lower()
                              == model)
        if not runs:
            return None
        run = runs[-1]
        if run.get("stopRequested"):  # a cancelled job serves nothing, its checkpoints included
            raise BodyError("model", f"{key} is not served: its fine-tuning job was cancelled")
        if at:
            path = Path(str(run_checkpoint(run, f"step-{step}", "model", f"{key}: ")["path"]))
        elif run.get("status") == "Done" and run.get("adapter_dir"):
            path = Path(str(run["adapter_dir"]))
        else:
            raise BodyError("model", f"{key} is not ready: its fine-tuning job is {run.get('status')}, not Done")
        return self._run_adapter(key, run, path)

    def adapter_endpoint(self, version: dict[str, Any]) -> str | None:
        """A trained model version's adapter, registered under an endpoint of its own to run it
        (evaluations, batch jobs); None for a preset model's version (no adapter)."""
        if not version.get("adapterDir"):
            return None
        endpoint = f"{EVAL_PREFIX}{version['sid']}"
        self.registry.register_adapter(endpoint, version["baseModel"], Path(version["adapterDir"]))
        return endpoint

    def engine_endpoint(self, model: ServedLike) -> str:
        """The registry endpoint behind a served model (a preset model's service is its base engine)."""
        return model.target.endpoint if isinstance(model, _Alias) else model.endpoint

    def loaded_models(self) -> list[str]:
        """Endpoints of the models this process has loaded (or started loading)."""
        with self._lock:
            return list(self._loaded)

    def note_loading(self, model: ServedLike) -> None:
        """Log once per model that its first call loads it."""
        with self._lock:
            if model.endpoint in self._loaded:
                return
            self._loaded.add(model.endpoint)
        log.info("loading model %s for its first call (this can take a few seconds)", model.name)

    # ---- deployment ----------------------------------------------------------------------

    def deploy(self, service: dict[str, Any]) -> dict[str, Any]:
        """Register a service's adapter as a chat endpoint; the service goes Serving or Failed."""
        version = self.store.get("versions", service["modelVersionId"])
        try:
            if version is None:
                raise ValueError(f"model version {service['modelVersionId']} no longer exists")
            served: ServedLike
            if version.get("adapterDir"):
                run = self.store.get("runs", version.get("runId")) or {}  # its checkpoints are served too
                served = self.registry.register_adapter(service["uri"], version["baseModel"],
                                                        Path(version["adapterDir"]), _adapters_of(run))
            else:
                served = _Alias(service["uri"], self.resolve("chat", version["baseModel"]))
        except Exception as exc:  # a failed deployment is a state, not a crash
            log.warning("deploying service %s failed: %s", service["sid"], exc)
            return self.store.update("services", service["id"], status=ServiceStatus.FAILED.value,
                                     errorMessage=str(exc))
        with self._lock:
            self._deployed[service["uri"].lower()] = served
            self._deploys += 1
        return self.store.update("services", service["id"], status=ServiceStatus.SERVING.value)


def _adapters_of(run: dict[str, Any]) -> list[Path]:
    """The adapters of every checkpoint of a run, its final one included."""
    paths = [e.get("path") for e in run.get("checkpointList") or []] + [run.get("adapter_dir")]
    return [Path(str(p)) for p in dict.fromkeys(paths) if p]


class _Alias:
    """A service of a preset (untrained) model: the same engine under the service's endpoint."""

    def __init__(self, endpoint: str, target: ServedLike) -> None:
        self.endpoint = endpoint
        self.name = endpoint
        self.api_types = ("chat", "completions")
        self.kind = target.kind
        self.digest = target.digest
        self.target = target


def _named(models: list[ServedLike], key: str) -> ServedLike | None:
    """The model whose endpoint or name is ``key`` (lower case), or None."""
    return next((m for m in models if key in (m.endpoint.lower(), m.name.lower())), None)

"""What a room sees of the platform: narrow faces of :class:`~qfnb.local.domain.platform.Platform`, which
assembles the rooms from above them, so no room imports it; and a stored record by its key."""

from __future__ import annotations

from typing import Any, Protocol

from qfnb.local.domain.state.datasets import ObjectStore
from qfnb.local.domain.state.store import Store
from qfnb.local.domain.state.values import NotFound
from qfnb.local.engines.api import RegistryLike, ServedLike
from qfnb.local.engines.store.model_store import ModelStore
from qfnb.local.settings import Settings
from qfnb.protocol.platform.traces import CallSpan


class Site(Protocol):
    """The platform's data: its settings, its SQLite store and its object store (the local BOS)."""

    settings: Settings
    store: Store
    objects: ObjectStore


class UsagePoint(Protocol):
    """The platform's one usage point (``records.meter``): a served call counted and its span kept."""

    def record(self, span: CallSpan) -> None: ...


class ServingSite(Site, Protocol):
    """The platform's data and the models it serves: a name's model, the engine behind it, the usage point."""

    registry: RegistryLike

    @property
    def meter(self) -> UsagePoint: ...
    def base_models(self) -> list[ServedLike]: ...
    def served(self, api_type: str | None = None) -> list[ServedLike]: ...
    def resolve(self, api_type: str, endpoint: str) -> ServedLike: ...
    def engine_endpoint(self, model: ServedLike) -> str: ...
    def adapter_endpoint(self, version: dict[str, Any]) -> str | None: ...
    def note_loading(self, model: ServedLike) -> None: ...


class Runs(Protocol):
    """The fine-tune runs' supervisor (``training.jobs``): a run queued, a run stopped."""

    def submit(self, run_id: int) -> None: ...
    def stop(self, run_id: int) -> bool: ...


class TrainingSite(ServingSite, Protocol):
    """The platform's fine-tunes too: their supervisor, where their checkpoints are kept, a service deployed,
    the reward long polls waiting now."""

    models: ModelStore
    reward_polls: int

    @property
    def supervisor(self) -> Runs: ...
    def deploy(self, service: dict[str, Any]) -> dict[str, Any]: ...


def get(site: Site, kind: str, key: Any, field: str) -> dict[str, Any]:
    """The stored ``kind`` record under ``key``; :class:`NotFound` naming ``field`` when there is none."""
    return site.store.get_or_raise(kind, key, NotFound(f"{field} {key!r} not found"))

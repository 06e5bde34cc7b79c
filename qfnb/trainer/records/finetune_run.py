"""What the fine-tune trainer's helper modules (its saved record, the official pipeline file,
replay) read and set of a trainer: :class:`FinetuneRun`, which ``LLMFinetune`` has. The helpers
take this protocol, never the trainer class, so they do not import the module they serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

    from ..actions import TrainAction
    from ..configs import DeployConfig, TrainConfig
    from ..pipeline import Pipeline


class FinetuneRun(Protocol):
    """A fine-tune trainer as its record, file and replay see it."""

    train_type: str
    dataset: Any
    train_config: TrainConfig
    deploy_config: DeployConfig | None
    name: str
    model_not_publish: bool
    #: reuse an identical finished run; None: when the cache is on
    replay: bool | None
    ppl: Pipeline
    #: when the trainer was made (unix time), kept across a reload
    created: float
    #: where an un-uploaded local dataset was stashed for a resume
    dataset_file: str | None
    #: the trainer's own config (None: the global one)
    config: Config | None

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def train_action(self) -> TrainAction: ...


#: a trainer class, as the loaders that build one see it
RunT = TypeVar("RunT", bound=FinetuneRun)

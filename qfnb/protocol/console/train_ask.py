"""The one typed training request: :class:`TrainAsk`, frozen, in the platform's own terms.

Every door that starts a fine-tune (the v1 console's ``CreateFineTuneJob``, the v2 console's
``CreateFineTuningTask`` with or without a Ray target, OpenAI's ``fine_tuning.jobs`` body, and the client's
``LLMFinetune`` and ``%qftrain``, which send the v2 body) converts what it was given into one of these; the
platform's ``create_run`` runs it. The mode is a row of :data:`~qfnb.protocol.console.train_modes.MODE_TABLE`
and the hyperparameters are that mode's record, checked against its bounds when the ask is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qfnb.protocol.console.train_modes import AskError, ModeRow, checked_hyper, mode_row

__all__ = ["AskError", "DataRef", "TrainAsk", "TrainData", "v2_data"]

#: one training file: (the request's field that named it, a dataset id or a ``bos:/`` URI or a file id)
DataRef = tuple[str, Any]


@dataclass(frozen=True)
class TrainData:
    """What a run trains on and what it holds out."""

    train: tuple[DataRef, ...]
    #: the held-out rows' own files (OpenAI's ``validation_file``); none: ``split`` holds rows out
    held_out: tuple[DataRef, ...] = ()
    #: (its field, the percentage of the training rows held out for the evaluation loss)
    split: tuple[str, Any] = ("splitRatio", None)


@dataclass(frozen=True)
class TrainAsk:
    """A fine-tune run, asked for: its mode, its base, its data and its mode's hyperparameters."""

    mode: ModeRow
    base: str
    data: TrainData
    #: the hyperparameters asked for (wire names), bounds checked; :attr:`run_hyper` fills in the mode's defaults
    hyper: Mapping[str, Any]
    #: the field the hyperparameters came in (errors found later, on the held-out split, name it)
    hyper_field: str = "hyperParameterConfig"
    #: a rewarded mode's reward source (a grader, or ``{"source": "client"}``)
    reward: Any = None
    #: the checkpoint adapter an incremental run continues from (a path on the platform)
    init_adapter: str | None = None
    #: a cluster that trains it instead of a local worker (``ray://HOST:PORT``), and its Ray Train workers
    target: str | None = None
    ray_workers: int | None = None
    #: the door's own fields, kept with the run (``peftType``, OpenAI's job record...)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, mode: Any, base: str, data: TrainData, hyper: Mapping[str, Any] | None,
              hyper_field: str = "hyperParameterConfig", mode_field: str = "trainMode", **rest: Any) -> TrainAsk:
        """The ask for ``mode`` (any spelling :func:`~.train_modes.train_mode` reads) with ``hyper`` checked as
        that mode's; ValueError naming ``mode_field`` for an unknown mode, :class:`AskError` naming
        ``hyper_field.key`` for a bad hyperparameter."""
        if not data.train:
            raise AskError("trainset", "at least one dataset is required")
        row = mode_row(mode, mode_field)
        return cls(row, base, data, checked_hyper(hyper, hyper_field), hyper_field, **rest)

    @property
    def run_hyper(self) -> dict[str, Any]:
        """The mode's hyperparameter record: what was asked, the mode's defaults for the rest."""
        return {**self.mode.defaults(self.base), **self.hyper}


def v2_data(config: Any, field: str = "datasetConfig") -> TrainData:
    """The data of a v2 ``CreateFineTuningTask``'s ``datasetConfig`` (``versions``: ``versionId`` or
    ``versionBosUri`` each; ``splitRatio``); AskError naming the field."""
    if not isinstance(config, Mapping) or not isinstance(config.get("versions"), list) or not config["versions"]:
        raise AskError(f"{field}.versions", "is required: [{versionId} or {versionBosUri}]")
    refs = []
    for i, version in enumerate(config["versions"]):
        ref = version.get("versionId") or version.get("versionBosUri") if isinstance(version, Mapping) else None
        if ref is None:
            raise AskError(f"{field}.versions[{i}]", "needs versionId or versionBosUri")
        refs.append((f"{field}.versions[{i}]", ref))
    return TrainData(tuple(refs), split=(f"{field}.splitRatio", config.get("splitRatio")))

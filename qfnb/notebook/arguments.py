"""The typed arguments of qfnb's magics: one frozen object per magic line, built once from the
line's parsed ``argparse.Namespace`` where the magic parses it (``ChatArgs.of(ns)`` in
:mod:`qfnb.notebook.magics`, ``BatchArgs.of(ns)`` in ``%qfbatch``). Nothing below a magic sees a
``Namespace``: the rooms (``chat``, ``training``, ``evaluation``, ``data``, ``images``) read these
fields, typed, and their flags stay declared beside them (``@argument`` lines).

Each field is the option's ``dest`` with its value as parsed, a repeatable option (``action="append"``,
``nargs="*"``) as a tuple. The generated option groups travel as their generated types, as given
(unchecked): the sampling options as :class:`~qfnb.notebook.sampling.SamplingOptions`, ``%qfimage``'s
as :class:`~qfnb.notebook.magic_options.ImageOptions`, ``%qftrain``'s hyperparameters as
:class:`~qfnb.notebook.magic_options.TrainOptions`; each is checked against the platform's ranges
where it is used (:func:`qfnb.notebook._checks.sampling_options`), so the first problem a line has is
the one it reported before. Light: no pandas, nothing of a run (``%load_ext qfnb`` imports it).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from qfnb.notebook.magic_options import ImageOptions, TrainOptions
from qfnb.notebook.sampling import SamplingOptions

__all__ = ["BatchArgs", "ChatArgs", "EvalArgs", "ImageArgs", "TraceArgs", "TrainArgs", "without_comment"]

#: a ``# note`` after a word-parsed magic's words (the README's ``%qfusage --by cell   # ...``)
_COMMENT = re.compile(r"(?:^|\s)#.*$", re.S)


def without_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` at its start or after a space), for the magics whose
    words hold no ``#`` of their own (``%qfusage``, ``%qfcache``, ``%qfcomplete``, ``%qftrace``)."""
    return _COMMENT.sub("", line)


if TYPE_CHECKING:  # pragma: no cover
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def _parsed(ns: argparse.Namespace) -> dict[str, Any]:
    """The parsed values by ``dest``, a repeated option's list as a tuple (the objects are frozen)."""
    return {name: tuple(value) if isinstance(value, list) else value for name, value in vars(ns).items()}


def _build(cls: type[D], ns: argparse.Namespace, **groups: Any) -> D:
    """``cls`` from ``ns``: each field the option of its name (a ``KeyError`` names an option the
    parser lacks), ``groups`` the sub-objects built from several options."""
    parsed = _parsed(ns)
    return cls(**{f.name: groups[f.name] if f.name in groups else parsed[f.name] for f in fields(cls)})


def _group(cls: type[D], ns: argparse.Namespace) -> D:
    """A generated option group (its fields are its options' ``dest``), as given."""
    return _build(cls, ns)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatArgs:
    """``%%qfchat`` / ``%qfchat``'s line."""

    model: tuple[str, ...] | None
    endpoint: tuple[str, ...] | None
    session: str | None
    reset: bool
    carry: bool  # --continue
    system: str | None
    prompt: str | None
    sampling: SamplingOptions
    output: str | None
    json: bool
    schema: str | None
    tools: str | None
    mcp: tuple[str, ...]
    mcp_timeout: float | None
    yes: bool
    max_steps: int
    rerun_tools: bool
    no_interp: bool
    no_stream: bool
    fresh: bool
    command: tuple[str, ...]

    @classmethod
    def of(cls, ns: argparse.Namespace) -> ChatArgs:
        return _build(cls, ns, sampling=_group(SamplingOptions, ns))


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageArgs:
    """``%qfimage``'s line."""

    model: str | None
    options: ImageOptions
    output: str | None
    prompt: tuple[str, ...]

    @classmethod
    def of(cls, ns: argparse.Namespace) -> ImageArgs:
        return _build(cls, ns, options=_group(ImageOptions, ns))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainArgs:
    """``%qftrain``'s line."""

    base: str | None
    dataset: str | None
    hyper: TrainOptions
    name: str | None
    eval_split: int | None
    early_stop: bool
    eval_metric: str | None
    forecast: bool
    dry_run: bool
    deploy: bool
    fresh: bool
    output: str | None
    attach: str | None  # "": the newest running job
    list: bool
    stop: str | None
    target: str | None = None  # --target: local, qianfan or ray://HOST:PORT (None: QFNB_TARGET, else the platform)
    ray_workers: int | None = None  # --ray-workers: Ray Train workers (None: QFNB_RAY_TRAIN_WORKERS, else 1)
    mode: str | None = None  # --mode: the train mode (None: SFT; qfnb.protocol.console.train_formats.MODES)
    reward: str | None = None  # --reward module:function: a RFT run's reward, scored in this kernel

    @classmethod
    def of(cls, ns: argparse.Namespace) -> TrainArgs:
        return _build(cls, ns, hyper=_group(TrainOptions, ns))

    @property
    def recipe(self) -> bool:
        """The line names something to train (else ``%qftrain`` shows the launcher form)."""
        return not (self.dataset is None and all(v is None for v in asdict(self.hyper).values()) and self.base is None
                    and self.name is None and self.eval_split is None)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalArgs:
    """``%qfeval``'s line."""

    result: str | None
    models: tuple[str, ...] | None
    endpoint: tuple[str, ...] | None
    prompts: tuple[str, ...] | None
    dataset: str | None
    metrics: tuple[str, ...] | None
    judge: str | None  # "": the embedded platform's chat model
    calibrate: tuple[str, ...] | None
    compare: str | None
    pairwise: str | None  # "": the embedded platform's chat model
    sequential: str | None  # "": no MIN_DIFF
    plan: str | None
    forecast: bool
    dry_run: bool
    batch: bool
    repeats: int | None
    recorded: tuple[str, ...] | None
    fresh: bool
    limit: int | None
    sample: int | None
    input_column: str | None
    reference_column: str | None
    sampling: SamplingOptions
    workers: int | None
    output: str | None
    chart: str
    target: str | None = None  # --target: where --batch's jobs run (implies --batch)
    label: str | None = None  # --label [WIDTH]: "" without a width

    @classmethod
    def of(cls, ns: argparse.Namespace) -> EvalArgs:
        return _build(cls, ns, sampling=_group(SamplingOptions, ns))


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchArgs:
    """``%qfbatch``'s line."""

    source: str | None
    model: str | None
    endpoint: str | None
    column: str
    name: str | None
    sampling: SamplingOptions
    json: bool
    schema: str | None
    forecast: bool
    dry_run: bool
    output: str | None
    no_wait: bool
    fresh: bool
    attach: str | None  # "": the newest task
    list: bool
    stop: str | None
    target: str | None = None  # "local", "qianfan" or "ray://HOST:PORT" (None: QFNB_TARGET, else the platform)

    @classmethod
    def of(cls, ns: argparse.Namespace) -> BatchArgs:
        return _build(cls, ns, sampling=_group(SamplingOptions, ns))


@dataclass(frozen=True)
class TraceArgs:
    """``%qftrace [N] [--cell N] [--all] [--slowest]``: how many calls, one cell's, every session's, the
    slowest first."""

    last: int = 20
    cell: int | None = None
    everyone: bool = False
    slowest: bool = False

"""The client's door for a job's target (:mod:`qfnb.protocol.platform.targets`: ``"local"``, ``"qianfan"`` or a
cluster ``KIND://HOST:PORT``; ``QFNB_TARGET`` sets the default): parsed once here, refused by name
before anything is sent, and the batch backend its kind's line of ``CLUSTERS`` names."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from qfnb._core.errors import ValidationError
from qfnb.protocol.platform.targets import ENV, LOCAL, QIANFAN, JobTarget, TargetError
from qfnb.protocol.platform.targets import parse_target as _parse

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

    from .batch_state import BatchBackend

__all__ = ["ENV", "LOCAL", "QIANFAN", "JobTarget", "check_platform", "cluster_backend", "parse_target", "refused"]


@contextlib.contextmanager
def refused() -> Iterator[None]:
    """A target's TargetError as the client's ValidationError, naming the same field."""
    try:
        yield
    except TargetError as exc:
        raise ValidationError(exc.field, exc.message) from None


def parse_target(value: str | JobTarget | None, *, field: str = "target") -> JobTarget | None:
    """``value`` (else ``QFNB_TARGET``) as a :class:`JobTarget`; None when neither names one (the
    config's own platform). A malformed value raises ValidationError naming ``field``."""
    with refused():
        return _parse(value, field=field)


def cluster_backend(config: Config, target: JobTarget | None) -> BatchBackend | None:
    """The batch backend of ``target``'s cluster kind, as its ``CLUSTERS`` line names it (imported here:
    a cluster's client library loads only for its target); None for no cluster."""
    if target is None or target.cluster is None:
        return None
    module, name = target.cluster.batch.split(":")
    backend: BatchBackend = getattr(importlib.import_module(module), name)(config, target)
    return backend


def check_platform(target: JobTarget | None, config: Config) -> None:
    """``local`` and ``qianfan`` name the platform ``config`` must point at: refused (naming the target)
    when it points at the other one."""
    if target is None or target.cluster is not None:
        return
    if target.kind == LOCAL and not config.embedded:
        raise ValidationError("target", "'local' runs on the embedded platform, but this client's config "
                                        "names Qianfan credentials: unset them, or pass target='qianfan'")
    if target.kind == QIANFAN and config.embedded:
        raise ValidationError("target", "'qianfan' runs on the Qianfan cloud, but no Qianfan credentials are "
                                        "configured (QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY, or a v2 API key)")

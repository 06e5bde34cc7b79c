"""The client's door for a job's target (:mod:`qfnb.protocol.platform.targets`: ``"local"``, ``"qianfan"`` or a
cluster ``KIND://HOST:PORT``; ``QFNB_TARGET`` sets the default): parsed once here, refused by name
before anything is sent (the batch backend a cluster's kind names is
:func:`qfnb.resources.batch_job.cluster_backend`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from qfnb._core.errors import ValidationError
from qfnb.protocol.platform.targets import ENV, LOCAL, QIANFAN, JobTarget, TargetError
from qfnb.protocol.platform.targets import parse_target as _parse

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["ENV", "LOCAL", "QIANFAN", "JobTarget", "check_platform", "parse_target", "refused"]


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

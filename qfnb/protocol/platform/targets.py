"""Where a job runs, parsed once at the public doors (``target=``, ``--target``, ``QFNB_TARGET``, a
fine-tune task's ``target`` field): ``"local"`` (the embedded platform), ``"qianfan"`` (the cloud) or a
cluster ``KIND://HOST:PORT`` of a kind in :data:`CLUSTERS`. Below the doors only :class:`JobTarget`
travels.

:data:`CLUSTERS` is the one table from a cluster kind to what runs its jobs, the way httpx picks a
transport by URL pattern: the client's batch backend (``BatchJob``, evaluation, ``batch_do``) and the
local platform's fine-tune follower, each named by module so that neither side imports the other.
A new kind is a backend module, a follower module and one line here (docs/architecture.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["CLUSTERS", "ENV", "LOCAL", "QIANFAN", "Cluster", "JobTarget", "TargetError", "parse_target"]

#: the environment variable naming the default target
ENV = "QFNB_TARGET"
LOCAL, QIANFAN = "local", "qianfan"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Cluster:
    """One kind of cluster target: its name in messages, what its port is, the class that runs a batch
    there (``module:Class``, a ``BatchBackend`` made with the config and the target: client side) and
    the module the local platform runs as a fine-tune's worker (``python -m``; it keeps the training
    worker's contract, and its ``check(target)`` is the route's check before anything is queued)."""

    title: str
    port: str
    batch: str
    train: str


#: cluster kind (the URL's scheme) -> what runs its jobs
CLUSTERS: dict[str, Cluster] = {
    "ray": Cluster("Ray", "a Ray head's dashboard, 8265 by default", batch="qfnb.resources.batch.ray_jobs:RayJobs",
                   train="qfnb.local.cluster.ray_follow"),
}


class TargetError(ValueError):
    """A target that names no place a job can run; ``field`` is where it was given."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class JobTarget:
    """A parsed target: ``kind`` is ``local``, ``qianfan`` or a key of :data:`CLUSTERS` (then ``host``
    and ``port``)."""

    kind: str
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"{self.kind}://{self.host}:{self.port}" if self.cluster else self.kind

    @property
    def cluster(self) -> Cluster | None:
        """What runs jobs of this kind of cluster; None for ``local`` and ``qianfan``."""
        return CLUSTERS.get(self.kind)

    @property
    def url(self) -> str:
        """The cluster's HTTP address (a Ray head's dashboard: what its Jobs API client is given)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def same_machine(self) -> bool:
        """A head on this machine's loopback: its jobs can run this interpreter and read its files."""
        return self.cluster is not None and self.host in _LOOPBACK


def _grammar() -> str:
    return "'local', 'qianfan' or " + ", ".join(f"'{kind}://HOST:PORT' ({c.port})" for kind, c in CLUSTERS.items())


def parse_target(value: object, *, field: str = "target", env: bool = True) -> JobTarget | None:
    """``value`` (else ``QFNB_TARGET`` when ``env``) as a :class:`JobTarget`; None when neither names
    one (the config's own platform). A malformed value raises TargetError naming ``field``."""
    if isinstance(value, JobTarget):
        return value
    if value is None or value == "":
        if not env:
            return None
        value, field = os.environ.get(ENV) or None, ENV
        if value is None:
            return None
    if not isinstance(value, str):
        raise TargetError(field, f"must be {_grammar()}, got {value!r}")
    text = value.strip()
    if text.lower() in (LOCAL, QIANFAN):
        return JobTarget(text.lower())
    kind = text.split("://", 1)[0].lower() if "://" in text else ""
    cluster = CLUSTERS.get(kind)
    if cluster is None:
        raise TargetError(field, f"{text!r} is not a target: give {_grammar()}")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port is None or port <= 0 or parts.path not in ("", "/") or parts.query:
        raise TargetError(field, f"{text!r} is malformed: a {cluster.title} target is '{kind}://HOST:PORT' "
                                 f"({cluster.port}), nothing after the port")
    return JobTarget(kind, parts.hostname, port)

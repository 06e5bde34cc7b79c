"""``Service``: a deployed endpoint (deploying waits through :func:`qfnb._core.runtime.poll.apoll_until`)."""

from __future__ import annotations

import json
import logging
import warnings
from typing import TYPE_CHECKING, Any

from qfnb._core.config import resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.record.cache import default_cache
from qfnb._core.runtime import sync
from qfnb._core.runtime.poll import apoll_until
from qfnb.model.configs import DeployConfig
from qfnb.model.consts import ServiceStatus, ServiceType
from qfnb.model.jobs import WAIT_LIMIT_S, PlatformJobError, Tick, no_tick, result_of
from qfnb.protocol.console.enums import ServiceStatus as RunStatus
from qfnb.resources.console import Service as ServiceAPI

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb.dataset import Dataset
    from qfnb.resources.inference.base import BaseInference

logger = logging.getLogger("qfnb.model")

_SERVICE_STATUS: dict[str, ServiceStatus] = {
    RunStatus.NEW: ServiceStatus.Created, RunStatus.DEPLOYING: ServiceStatus.Deploying,
    RunStatus.SERVING: ServiceStatus.Deployed, RunStatus.DONE: ServiceStatus.Deployed,
    RunStatus.FAILED: ServiceStatus.DeployFailed, RunStatus.STOPPED: ServiceStatus.DeployStopped}


class Service:
    """A deployed service; ``get_res()`` gives the matching inference resource. ``model`` is
    what it serves: a :class:`~qfnb.model.Model`, or a preset model's name."""

    def __init__(self, id: str | int | None = None, endpoint: str | None = None,
                 model: object = None, deploy_config: DeployConfig | None = None,
                 service_type: ServiceType | str | None = ServiceType.Chat,
                 config: Config | None = None) -> None:
        if id is None and endpoint is None and not isinstance(model, str):
            raise ValidationError("id", "give a service id, an endpoint, or a preset model's name (model=)")
        self.id = id
        self.endpoint = endpoint
        self.model = model
        self.deploy_config = deploy_config
        self.service_type = ServiceType(service_type or ServiceType.Chat)
        self.config = config
        self.url: str | None = None

    def __repr__(self) -> str:
        return f"Service(id={self.id!r}, endpoint={self.endpoint!r}, type={self.service_type.value})"

    async def adetail(self) -> dict[str, Any]:
        if self.id is None:
            raise ValidationError("id", "this service was given by endpoint only")
        return result_of(await ServiceAPI.V2.aservice_detail(str(self.id), config=resolve_config(self.config)))

    async def await_serving(self, *, tick: Tick = no_tick) -> dict[str, Any]:
        """Poll ``DescribeService`` until ``Serving``; the endpoint is the url's last segment."""
        cfg = resolve_config(self.config)

        def serving(info: dict[str, Any]) -> bool:
            status = info.get("runStatus")
            if status in (RunStatus.FAILED, RunStatus.STOPPED):
                raise PlatformJobError(f"service {self.id} deployment ended {status}: "
                                       f"{info.get('errorMessage') or ''}".rstrip(": "))
            return status in (RunStatus.SERVING, RunStatus.DONE)

        info = await apoll_until(self.adetail, serving, interval=cfg.deploy_status_polling_interval,
                                 timeout=WAIT_LIMIT_S, what=f"service {self.id}", tick=tick)
        self.url = info.get("url")
        if self.url:
            self.endpoint = str(self.url).rstrip("/").rsplit("/", 1)[-1]
        if self.endpoint:  # a new deployment answers differently: forget the old one's cached answers
            forgotten = default_cache().invalidate(self.endpoint)
            if forgotten:
                logger.info("forgot %d cached answers of endpoint %s (redeployed)", forgotten, self.endpoint)
        logger.info("service %s serving at endpoint %s", self.id, self.endpoint)
        return info

    async def aget_status(self) -> ServiceStatus:
        """Trainer-level status of the deployment (one ``DescribeService`` call)."""
        return _SERVICE_STATUS.get(str((await self.adetail()).get("runStatus") or ""), ServiceStatus.Unknown)

    def get_status(self) -> ServiceStatus:
        """Blocking :meth:`aget_status`."""

        return sync.run(self.aget_status())

    @property
    def status(self) -> ServiceStatus:
        """Deprecated (a network call behind an attribute; kept for the official SDK's
        ``Service.status``): use :meth:`get_status`."""
        warnings.warn("Service.status calls the platform; use Service.get_status()", DeprecationWarning,
                      stacklevel=2)
        return self.get_status()

    def chat_target(self) -> dict[str, str]:
        if isinstance(self.model, str) and not self.endpoint:  # a preset model's service, by name
            return {"model": self.model}
        if not self.endpoint:
            raise ValidationError("endpoint", f"service {self.id} has no endpoint yet (not serving)")
        return {"endpoint": self.endpoint}

    def get_res(self) -> BaseInference[Any, Any, Any]:
        """``ChatCompletion``/``Completion``/``Embedding`` bound to this service's endpoint."""

        # deferred: the inference resources load on first use
        from qfnb.resources.inference import ChatCompletion, Completion, Embedding, Text2Image

        classes: dict[ServiceType, type[BaseInference[Any, Any, Any]]] = {
            ServiceType.Chat: ChatCompletion, ServiceType.Completion: Completion, ServiceType.Embedding: Embedding,
            ServiceType.Text2Image: Text2Image}
        cls = classes[self.service_type]
        return cls(**self.chat_target(), config=self.config)

    def exec(self, input: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Call the service: ``input`` holds the request fields (``messages`` for chat)."""
        return self.get_res().do(**{**(input or {}), **kwargs})

    async def aexec(self, input: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self.get_res().ado(**{**(input or {}), **kwargs})

    def batch_inference(self, dataset: Dataset, **kwargs: Any) -> Dataset:
        return dataset.test_using_llm(self, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Service", "id": self.id, "endpoint": self.endpoint, "url": self.url,
                "service_type": self.service_type.value,
                "deploy_config": self.deploy_config.model_dump(mode="json") if self.deploy_config else None}

    def dumps(self) -> bytes:
        return json.dumps(self.to_dict()).encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: Config | None = None,
                  model: object = None) -> Service:
        dc = data.get("deploy_config")
        svc = cls(id=data.get("id"), endpoint=data.get("endpoint"), model=model,
                  deploy_config=DeployConfig(**dc) if dc else None,
                  service_type=data.get("service_type") or ServiceType.Chat, config=config)
        svc.url = data.get("url")
        return svc

    @classmethod
    def loads(cls, data: bytes | str) -> Service:
        return cls.from_dict(json.loads(data))

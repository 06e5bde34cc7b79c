"""``Model`` (a published model version) and ``Service`` (a deployed endpoint).

Publishing and deploying are written once here (async, with polling); the trainer's
``ModelPublishAction``/``DeployAction`` call the same functions.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from qfnb._core.config import resolve_config
from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.runtime import sync
from qfnb._core.runtime.poll import apoll_until
from qfnb._core.runtime.progress import ProgressArg
from qfnb._core.runtime.stages import StageFeed, make_stages
from qfnb.model.configs import DeployConfig
from qfnb.protocol.console import checkpoints
from qfnb.protocol.console.enums import ModelVersionState
from qfnb.resources.console import FineTune
from qfnb.resources.console import Model as ModelAPI
from qfnb.resources.console import Service as ServiceAPI
from qfnb.resources.console.sending.account import console_v2, require_iam_keys

from .jobs import WAIT_LIMIT_S, PlatformJobError, Tick, no_tick, result_of
from .service import Service

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb.dataset import Dataset

logger = logging.getLogger("qfnb.model")

#: a model version's ``sourceType`` for the platform's own (preset) models
PRESET_SOURCE = "PlatformPreset"
#: a v2 model's ``state`` once it failed (``DescribeModel``; the v1 repository says ``Fail``)
V2_FAILED = "Failed"
#: a deploy's stages, as its progress bar names them
PUBLISHING, CREATING, STARTING = "publishing the model", "creating the service", "starting the service"


def _shown(tick: Tick, stages: StageFeed | None) -> Tick:
    """``tick``, also showing each poll's platform state (a version's, a service's) on ``stages``."""
    if stages is None:
        return tick

    async def shown(info: dict[str, Any]) -> None:
        stages.note(str(info.get("runStatus") or info.get("state") or ""))
        await tick(info)

    return shown


class Model:
    """A model version on the platform: ``Model(set_id, id)`` as in the official SDK, where
    ``set_id`` is the model (set) and ``id`` the version; ``version_id=`` is qfnb's spelling of
    ``id`` (either works, and ``.id``/``.version_id`` read the same value)."""

    def __init__(self, set_id: int | str | None = None, id: int | str | None = None,
                 task_id: str | None = None, job_id: str | None = None, name: str = "", *,
                 version_id: int | str | None = None, model_set_id: str | None = None,
                 service: Service | None = None, config: Config | None = None) -> None:
        if id is not None and version_id is not None and id != version_id:
            raise ValidationError("version_id", "give the version once: id= (the official name) or version_id=")
        self.set_id = set_id
        self.version_id = version_id if version_id is not None else id
        self.task_id = task_id
        self.job_id = job_id
        self.name = name
        self.model_set_id = model_set_id
        self.version_id_str: str | None = self.version_id if isinstance(self.version_id, str) else None
        self.service = service
        self.config = config
        #: the version's ``sourceType`` once looked up ("PlatformPreset", "Train", ...)
        self.source: str | None = None
        #: the run's checkpoint this version was published from (None: its final adapter)
        self.step: int | None = None

    @property
    def id(self) -> int | str | None:
        """The model version's id (the official SDK's ``Model.id``); same as ``version_id``."""
        return self.version_id

    @id.setter
    def id(self, value: int | str | None) -> None:
        self.version_id = value

    def __repr__(self) -> str:
        return (f"Model(set_id={self.set_id!r}, id={self.version_id!r}, name={self.name!r}, "
                f"task_id={self.task_id!r}, job_id={self.job_id!r})")

    # -- info ------------------------------------------------------------------------------

    async def aauto_complete_info(self) -> Model:
        """Fill ``id``/``name``/ids from ``modelVersionDetail`` of ``version_id``."""
        if self.version_id is None:
            raise ValidationError("version_id", "is required to look the model up")
        cfg = resolve_config(self.config)
        if console_v2(cfg):  # a 2026 account: the model is a v2 model ("amv-..."), read with DescribeModel
            v2 = (await ModelAPI.V2.adescribe_model(str(self.version_id), config=cfg)).parsed.result
            self.model_set_id = v2.model_set_id or self.model_set_id
            self.set_id = self.set_id or self.model_set_id
            self.version_id_str = v2.model_id or self.version_id_str
            self.name = v2.model_set_name or self.name
            self.source = v2.source_type or self.source
            self.task_id = self.task_id or v2.source_info.get("taskId")
            return self
        info = (await ModelAPI.adetail(self.version_id, config=cfg)).parsed.result
        self.set_id = info.model_id or self.set_id
        self.model_set_id = info.model_id_str or self.model_set_id
        self.version_id_str = info.model_version_id_str or self.version_id_str
        self.name = info.model_name or self.name
        self.source = info.source_type or self.source
        train = info.source_extra.get("trainSourceExtra") or {}
        self.job_id = self.job_id or train.get("taskIdStr")
        self.task_id = self.task_id or train.get("runIdStr")
        return self

    def auto_complete_info(self) -> Model:
        return sync.run(self.aauto_complete_info())

    # -- publish ---------------------------------------------------------------------------

    async def apublish(self, name: str = "", *, tick: Tick = no_tick, checkpoint: int | str = "best") -> Model:
        """Publish the training run (``job_id``/``task_id``) and wait until it is Ready.
        ``checkpoint``: which of its saved checkpoints ("best", "last" or a step; ``versionMeta.step``)."""
        if self.version_id is not None:
            return self
        if not self.job_id or not self.task_id:
            raise ValidationError("task_id", "job_id and task_id of a finished run are required")
        cfg = resolve_config(self.config)
        self.name = name or self.name or f"m_{uuid.uuid4().hex[:12]}"
        if console_v2(cfg):  # refused before anything is sent
            require_iam_keys(cfg, "publishing a model")
        self.step = await self._checkpoint_step(checkpoint, cfg)
        if console_v2(cfg):
            await self._create_custom_model(cfg)
        else:
            meta: dict[str, Any] = {"taskId": self.job_id, "iterationId": self.task_id}
            if self.step is not None:
                meta["step"] = self.step
            res = result_of(await ModelAPI.apublish(is_new=True, model_name=self.name, version_meta=meta, config=cfg))
            self.set_id = res.get("modelId")
            self.model_set_id = res.get("modelIDStr")
            self.version_id = res.get("versionId")
            self.version_id_str = res.get("versionIdStr")
        logger.info("published %s as model %s version %s", self.task_id, self.set_id, self.version_id)
        await self.await_ready(tick=tick)
        return self

    async def _create_custom_model(self, cfg: Config) -> None:
        """A 2026 account's publish: ``CreateCustomModelSet`` (a new model named ``self.name``, unless
        ``model_set_id`` names one) then ``CreateCustomModel`` (``sourceType`` Train, ``trainMeta``
        ``{"taskId", "checkpointStep"?}``); the v2 model id (``amv-...``) is the version's id.
        https://cloud.baidu.com/doc/qianfan-api/s/Mmnijpuh3"""
        if not self.model_set_id:
            made = result_of(await ModelAPI.V2.acreate_custom_model_set(self.name, config=cfg))
            self.model_set_id = made.get("modelSetId")
            if not self.model_set_id:
                raise PlatformJobError("CreateCustomModelSet returned no modelSetId")
        meta: dict[str, Any] = {"taskId": str(self.task_id)}
        if self.step is not None:
            meta["checkpointStep"] = self.step
        res = result_of(await ModelAPI.V2.acreate_custom_model(str(self.model_set_id), "Train", train_meta=meta,
                                                               config=cfg))
        if not res.get("modelId"):
            raise PlatformJobError(f"CreateCustomModel returned no modelId for task {self.task_id}")
        self.set_id = self.model_set_id
        self.version_id = self.version_id_str = str(res["modelId"])

    def publish(self, name: str = "", checkpoint: int | str = "best") -> Model:
        return sync.run(self.apublish(name, checkpoint=checkpoint))

    async def _checkpoint_step(self, which: int | str, cfg: Config) -> int | None:
        """The step of the run's checkpoint ``which`` names, from its task detail's ``checkpointList``
        (None: the run's final adapter, for "last" or a run that saved no checkpoints)."""
        if which == "last":
            return None
        detail = result_of(await FineTune.V2.atask_detail(task_id=str(self.task_id), config=cfg))
        saved = detail.get("checkpointList") or []
        if not saved and which == "best":
            return None
        try:
            return int(checkpoints.choose(saved, which)["step"])
        except ValueError as exc:
            raise ValidationError("checkpoint", str(exc)) from None

    async def await_ready(self, *, tick: Tick = no_tick) -> dict[str, Any]:
        """Poll the version's ``state`` until ``Ready`` (``Fail``/``Failed`` raises): ``modelVersionDetail``,
        or on a 2026 account ``DescribeModel`` (https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Zlxeg0nn2)."""
        cfg = resolve_config(self.config)
        version_id = self.version_id
        if version_id is None:
            raise ValidationError("version_id", "is required to wait for a published model")

        v2 = console_v2(cfg)

        async def fetch() -> dict[str, Any]:
            if v2:  # a v2 model's state: DescribeModel
                return result_of(await ModelAPI.V2.adescribe_model(str(version_id), config=cfg))
            return result_of(await ModelAPI.adetail(version_id, config=cfg))

        def ready(info: dict[str, Any]) -> bool:
            if info.get("state") in (ModelVersionState.FAIL, V2_FAILED):
                raise PlatformJobError(f"model version {version_id} failed to publish")
            return info.get("state") == ModelVersionState.READY

        return await apoll_until(fetch, ready, interval=cfg.model_publish_status_polling_interval,
                                 timeout=WAIT_LIMIT_S, what=f"model version {version_id}", tick=tick)

    # -- deploy ----------------------------------------------------------------------------

    def deploy_stages(self) -> list[str]:
        """What a deploy of this model goes through, in words (its progress bar's stages)."""
        return [*([PUBLISHING] if self.version_id is None else []), CREATING, STARTING]

    async def adeploy(self, deploy_config: DeployConfig, *, tick: Tick = no_tick,
                      stages: StageFeed | None = None) -> Service:
        """Deploy as a service (v2 ``CreateService``) and wait until it serves; ``stages``: a feed
        of :meth:`deploy_stages` to show how it goes (see :meth:`deploy`)."""
        if not isinstance(deploy_config, DeployConfig):
            raise ValidationError("deploy_config", "must be a qfnb.trainer.DeployConfig")
        tick = _shown(tick, stages)
        if self.version_id is None:
            if stages is not None:
                stages.enter(PUBLISHING)
            await self.apublish(tick=tick, checkpoint=deploy_config.checkpoint)
        if stages is not None:
            stages.enter(CREATING)
        cfg = resolve_config(self.config)
        if console_v2(cfg):
            require_iam_keys(cfg, "deploying a model")
        if not self.model_set_id or not self.version_id_str:
            await self.aauto_complete_info()
        suffix = deploy_config.endpoint_suffix or f"{deploy_config.endpoint_prefix or 'ep'}_{uuid.uuid4().hex[:8]}"
        name = deploy_config.name or f"svc_{uuid.uuid4().hex[:8]}"
        resources: dict[str, Any] = {"type": deploy_config.resource_type,
                                     "replicasCount": deploy_config.replicas}
        if deploy_config.qps:
            resources["qps"] = deploy_config.qps
        unit, length = (("Month", deploy_config.months) if deploy_config.months
                        else ("Hour", deploy_config.hours))
        billing = {"paymentTiming": "Prepaid", "reservation": {"reservationTimeUnit": unit,
                                                               "reservationLength": length}}
        created = (await ServiceAPI.V2.acreate_service(
            model_set_id=str(self.model_set_id), model_id=str(self.version_id_str or self.version_id),
            name=name, url_suffix=suffix, resource_config=resources, billing=billing,
            description=deploy_config.description or None, config=cfg, **deploy_config.extras)).parsed.result
        service = Service(id=created.service_id or None, model=self, deploy_config=deploy_config,
                          service_type=deploy_config.service_type, config=self.config)
        if stages is not None:
            stages.enter(STARTING)
        await service.await_serving(tick=tick)
        self.service = service
        return service

    def deploy(self, deploy_config: DeployConfig, progress: ProgressArg = None) -> Service:
        """Blocking :meth:`adeploy`. ``progress``: how the deploy goes, stage by stage — by default
        a widget inside a notebook kernel (whether or not ``%load_ext qfnb`` ran), ``True`` also a
        tqdm-style line on a terminal, ``False`` none, or an ``on_start``/``on_result``/``on_close`` object."""

        if not isinstance(deploy_config, DeployConfig):  # refused before a bar is drawn
            raise ValidationError("deploy_config", "must be a qfnb.trainer.DeployConfig")
        feed = make_stages(progress, self.deploy_stages(), desc=f"deploy {self._label()}")  # drawn in this cell
        try:
            service = sync.run(self.adeploy(deploy_config, stages=feed))
        except BaseException:
            if feed is not None:
                feed.close(ok=False)
            raise
        if feed is not None:
            feed.close(ok=True, detail=f"serving at endpoint {service.endpoint}")
        return service

    def _label(self) -> str:
        return self.name or str(self.version_id or self.task_id or "model")

    # -- use -------------------------------------------------------------------------------

    async def achat_target(self) -> dict[str, str]:
        """``ChatCompletion`` kwargs for this model: its deployed service's endpoint, or for a
        platform preset model (looked up once) the platform's own service of that name."""
        if self.service is not None:
            return self.service.chat_target()
        lookup_error: QfnbError | None = None
        if self.source is None and self.version_id is not None:
            try:
                await self.aauto_complete_info()
            except QfnbError as exc:
                lookup_error = exc
        if self.source == PRESET_SOURCE and self.name:
            return {"model": self.name}
        why = f" (looking the version up failed: {lookup_error})" if lookup_error is not None else ""
        raise ValidationError("model", f"model {self.version_id} has no deployed service{why}; "
                              "call deploy(DeployConfig(...)) first") from lookup_error

    def chat_target(self) -> dict[str, str]:
        """Blocking :meth:`achat_target`."""
        if self.service is not None:
            return self.service.chat_target()

        return sync.run(self.achat_target())

    def exec(self, input: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Run the deployed service (``input={"messages": [...]}`` for chat)."""
        if self.service is None:
            raise ValidationError("model", "the model has no deployed service to run")
        return self.service.exec(input, **kwargs)

    async def abatch_inference(self, dataset: Dataset, **kwargs: Any) -> Dataset:
        """Run every prompt of ``dataset`` through the model: on its service (or, for a preset,
        the platform's), else — a version with no service — as a durable platform batch-inference
        task (``Dataset.test_using_llm`` does that for such a model)."""
        return await dataset.atest_using_llm(self, **kwargs)

    def batch_inference(self, dataset: Dataset, **kwargs: Any) -> Dataset:
        """Blocking :meth:`abatch_inference`; the result has ``prompt``, ``response`` (the
        reference) and ``llm_output`` columns."""

        return sync.run(self.abatch_inference(dataset, **kwargs))

    # -- serialization (identifiers only, never credentials) -------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Model", "set_id": self.set_id, "version_id": self.version_id,
                "version_id_str": self.version_id_str, "model_set_id": self.model_set_id,
                "task_id": self.task_id, "job_id": self.job_id, "name": self.name, "step": self.step,
                "service": self.service.to_dict() if self.service else None}

    def dumps(self) -> bytes:
        return json.dumps(self.to_dict()).encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: Config | None = None) -> Model:
        # "id" is the set id in records written before the official naming
        m = cls(set_id=data.get("set_id", data.get("id")), version_id=data.get("version_id"),
                task_id=data.get("task_id"), job_id=data.get("job_id"), name=data.get("name") or "",
                model_set_id=data.get("model_set_id"), config=config)
        m.version_id_str = data.get("version_id_str")
        m.step = data.get("step")
        if data.get("service"):
            m.service = Service.from_dict(data["service"], config=config, model=m)
        return m

    @classmethod
    def loads(cls, data: bytes | str) -> Model:
        return cls.from_dict(json.loads(data))

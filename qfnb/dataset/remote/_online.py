"""``Dataset.online_data_process``: clean a platform dataset with the platform's ETL task."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from qfnb._core.config import resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.runtime import sync
from qfnb._core.runtime.poll import apoll_until
from qfnb.protocol.console.data_enums import TEMPLATE_PROJECT
from qfnb.resources.console import Data
from qfnb.resources.console.consts import DataSetType, DataTemplateType, ETLTaskStatus

from ..view import PlatformSource
from ._platform import version_info

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb.protocol.wires.qianfan.answers import EtlTask

    from ..qianfan_data_operators import QianfanOperator

__all__ = ["OnlineOps"]

#: the most seconds an ETL task is waited for
ETL_WAIT_S = 24 * 3600.0
_KINDS = ("clean", "filter", "deduplication", "desensitization")


class OnlineOps:
    """The platform-side processing of a :class:`~qfnb.dataset.Dataset` linked to a platform
    dataset (``Dataset.load(qianfan_dataset_id=...)`` or ``source=QianfanDataSource``)."""

    qianfan_dataset_id: int | str | None
    inner_data_source_cache: Any
    config: Config | None

    async def _platform_source(self) -> dict[str, Any]:
        """id, template and storage of the platform dataset behind this one."""
        source = self.inner_data_source_cache
        if isinstance(source, PlatformSource):
            return source.platform_storage()
        if self.qianfan_dataset_id is None:
            raise ValidationError("dataset", "can't process a dataset that is not on the platform: save it there first")
        version = await version_info(self.qianfan_dataset_id, self.config)
        storage = version.get("storage") or {}
        return {"id": self.qianfan_dataset_id,
                "template": DataTemplateType(version.get("templateType", DataTemplateType.NonSortedConversation)),
                "storage_type": version.get("storageType", "sysBos"), "storage_id": storage.get("storageId") or None,
                "storage_path": storage.get("rawStoragePath") or None}

    async def astart_online_data_process_task(self, operators: list[QianfanOperator]) -> Any:
        """Create the ETL task (into a new platform dataset); its id."""
        source = await self._platform_source()
        template = source["template"]
        if template is not DataTemplateType.GenericText:
            raise ValidationError("dataset", "the platform cleans GenericText datasets only, this one is "
                                  f"{template.name}")
        operations: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _KINDS}
        for op in operators:
            if op.operator_type not in operations:
                raise ValidationError("operators", f"unknown operator type {op.operator_type!r}")
            operations[op.operator_type].append(op.operation())
        created = await Data.acreate_bare_dataset(
            f"etl_result_set_{uuid.uuid4().hex[:10]}", DataSetType.TextOnly, TEMPLATE_PROJECT[template], template,
            source["storage_type"], source["storage_id"], source["storage_path"], config=self.config)
        target = created.parsed.result.dataset_id
        resp = await Data.acreate_dataset_etl_task(f"etl_task_{uuid.uuid4().hex[:10]}", source["id"], target,
                                                   operations, config=self.config)
        etl_id: bool | int | str | None = resp.parsed.result
        if isinstance(etl_id, bool):  # the platform answers "result": true; the task is the one writing ``target``
            listing = await Data.aget_dataset_etl_task_list(page_size=50, config=self.config)
            found = [i for i in listing.parsed.result.items
                     if str(i.dest_dataset_str_id or i.dest_dataset_id) == str(target)]
            if not found:
                raise ValidationError("etl_id", f"the ETL task writing dataset {target} is not in the task list")
            etl_id = found[0].etl_str_id or found[0].etl_id or found[0].id
        return etl_id

    def start_online_data_process_task(self, operators: list[QianfanOperator]) -> Any:
        """Blocking :meth:`astart_online_data_process_task`."""
        return sync.run(self.astart_online_data_process_task(operators))

    async def aonline_data_process(self, operators: list[QianfanOperator]) -> dict[str, Any]:
        """Run an ETL task and wait for it: ``{"is_succeeded", "etl_task_id", "new_dataset_id"}``
        (the cleaned rows are in the new platform dataset)."""
        etl_id = await self.astart_online_data_process_task(operators)
        cfg = resolve_config(self.config)

        async def info() -> EtlTask:
            return (await Data.aget_dataset_etl_task_info(etl_id, config=self.config)).parsed.result

        def ended(found: EtlTask) -> bool:
            return found.process_status not in (ETLTaskStatus.Running, ETLTaskStatus.Paused, None)

        found = await apoll_until(info, ended, interval=cfg.import_status_polling_interval, timeout=ETL_WAIT_S,
                                  what=f"ETL task {etl_id}")
        out: dict[str, Any] = {"is_succeeded": found.process_status == ETLTaskStatus.Finished, "etl_task_id": etl_id}
        if out["is_succeeded"]:
            out["new_dataset_id"] = found.dest_dataset_str_id or found.dest_dataset_id
        return out

    def online_data_process(self, operators: list[QianfanOperator]) -> dict[str, Any]:
        """Blocking :meth:`aonline_data_process`."""
        return sync.run(self.aonline_data_process(operators))

"""``LoadDataSetAction``: put the training data on the platform and name it for training."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.resources.console import Data
from qfnb.resources.console.sending.account import console_v2, require_iam_keys

from .._action import AsyncAction, RunContext
from ..configs import DatasetConfig
from ..consts import ActionState
from ..event import EventHandler

__all__ = ["LoadDataSetAction", "dataset_config", "warn_ignored"]

logger = logging.getLogger("qfnb.trainer")

_WARNED: set[tuple[str, str]] = set()


def warn_ignored(owner: str, kwargs: dict[str, Any], why: str = "qfnb does not use it") -> None:
    """The official SDK takes ``**kwargs`` here; qfnb accepts them and warns once per name
    about those it has no use for (``why``; an action's own ``id``/``name``/``event_handler`` are used)."""
    for key in sorted(set(kwargs) - {"id", "name", "event_handler"}):
        if (owner, key) not in _WARNED:
            _WARNED.add((owner, key))
            logger.warning("%s: ignoring %s= (%s)", owner, key, why)


class LoadDataSetAction(AsyncAction):
    """Make sure the dataset is on the platform (upload + release) and name it for training.

    On a 2026 (v2) account (``config.api_version`` 2, not the embedded platform) the upload is the
    ``/v2/dataset`` calls (:mod:`qfnb.dataset.remote._platform_v2`), the entry's ``id`` a published
    data-set version (``ds-...``); the IAM keys are required before anything is sent.

    ``dataset``: a qfnb :class:`~qfnb.dataset.Dataset` (uploaded when local;
    ``Dataset(id=1)`` is platform dataset 1), a platform dataset id, or a ``bos:/`` URI.
    Output, as the official SDK's: ``{"datasets": [{"id": 1, "name": "test_dataset", "type": 1}]}``
    (``type`` 1: a platform dataset; 2: a BOS URI, with ``"bos_path"``).
    """

    def __init__(self, dataset: Any = None, event_handler: EventHandler | None = None,
                 **kwargs: Any) -> None:
        kwargs.pop("split_ratio", None)  # qfnb <= 0.3: the split is the train config's trainset_rate
        warn_ignored("LoadDataSetAction", kwargs)
        super().__init__(event_handler=event_handler, **kwargs)
        if dataset is None:
            raise ValidationError("dataset", "is required")
        self.dataset = dataset

    async def aexec(self, input: dict[str, Any] | None, ctx: RunContext) -> dict[str, Any]:
        base = dict(input or {})
        if console_v2(cfg := ctx.resolved()):  # a 2026 account: refused before anything is sent
            require_iam_keys(cfg)
        conf = self.dataset if isinstance(self.dataset, DatasetConfig) else None
        items = list(conf.datasets) if conf is not None else [self.dataset]
        rates = (conf.sampling_rates or []) if conf is not None else []
        if rates and len(rates) != len(items):
            raise ValidationError("sampling_rates", f"give one rate per dataset ({len(items)}), got {len(rates)}")
        entries = [await self._one(ds, ctx) for ds in items]
        for entry, rate in zip(entries, rates, strict=False):  # rates: one per dataset, or none
            entry["sampling_rate"] = rate
        out = {**base, "datasets": entries}
        if conf is not None:
            if conf.eval_split_ratio is not None:
                out["split_ratio"] = conf.eval_split_ratio
            if conf.corpus_proportion is not None:
                out["corpus_proportion"] = conf.corpus_proportion
        return out

    async def _one(self, ds: Any, ctx: RunContext) -> dict[str, Any]:
        """One dataset on the platform (uploaded when local): its entry of the output."""
        from qfnb.dataset import Dataset, release_if_needed  # deferred: loads pandas (`import qfnb.trainer` does not)

        if isinstance(ds, str) and ds.startswith("bos:/"):
            return {"id": None, "name": ds, "type": 2, "bos_path": ds}
        name = None
        if isinstance(ds, Dataset) and ds.qianfan_dataset_id is None:
            self.emit(ActionState.Running, "uploading dataset", {"rows": len(ds)})
            name = f"ds_{uuid.uuid4().hex[:10]}"
            await ds.asave(qianfan_dataset_create_args={"name": name}, config=ctx.config)
            dataset_id = ds.qianfan_dataset_id
        elif isinstance(ds, Dataset) and (dataset_id := ds.qianfan_dataset_id) is not None:
            await release_if_needed(dataset_id, ctx.config)
        elif isinstance(ds, int | str) and not isinstance(ds, bool) and ds != "":
            dataset_id = ds
            await release_if_needed(dataset_id, ctx.config)
        else:
            raise ValidationError("dataset", "must be a qfnb Dataset, a platform dataset id "
                                  f"or a bos:/ URI, got {type(ds).__name__}")
        self.extra["dataset_id"] = dataset_id
        if name is None and console_v2(ctx.resolved()):  # a v2 data-set version ("ds-..."), published above
            found = await Data.V2.adescribe_dataset_version(str(dataset_id), config=ctx.config)
            name = ((found.body or {}).get("result") or {}).get("datasetName") or None
        elif name is None:
            # a None id is refused by the builder (ValidationError)
            info = await Data.aget_dataset_info(dataset_id, config=ctx.config)  # type: ignore[arg-type]
            name = info.parsed.result.name or None
        return {"id": dataset_id, "name": name, "type": 1}


def dataset_config(datasets: Any, split_ratio: int) -> dict[str, Any]:
    """The v2 ``datasetConfig`` for ``LoadDataSetAction``'s ``datasets`` list (a dict, as saved
    by qfnb <= 0.3, is already one)."""
    if isinstance(datasets, dict):
        return datasets
    if not isinstance(datasets, list) or not datasets:
        raise ValidationError("datasets", "expected [{\"id\": ..., \"type\": 1}, ...] (LoadDataSetAction's output)")
    def rate(d: dict[str, Any]) -> dict[str, Any]:
        return {"samplingRate": d["sampling_rate"]} if d.get("sampling_rate") is not None else {}

    bos = [d for d in datasets if d.get("type") == 2]
    if bos:
        return {"sourceType": "Bos", "splitRatio": split_ratio,
                "versions": [{"versionBosUri": d.get("bos_path") or d.get("name"), **rate(d)} for d in bos]}
    return {"sourceType": "Platform", "versions": [{"versionId": d["id"], **rate(d)} for d in datasets],
            "splitRatio": split_ratio}

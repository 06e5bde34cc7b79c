"""A fine-tune trainer's saved record (``<cache>/pipeline/<id>.json``): written at every step,
read back by ``LLMFinetune.load(id)``, listed by ``LLMFinetune.list()``. Ids, states and configs
only, never credentials."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.protocol.console.train_modes import mode_row

from ..configs import DeployConfig, TrainConfig
from . import persist
from .finetune_run import FinetuneRun, RunT

__all__ = ["TrainerSummary", "Uploaded", "list_summaries", "load_trainer", "record_of", "stash_dataset"]


class TrainerSummary(dict[str, Any]):
    """One saved trainer's summary: a dict whose keys are attributes too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Uploaded:
    """Stands for a dataset that a resumed trainer already uploaded (its step is Done)."""

    def __repr__(self) -> str:
        return "<dataset already uploaded>"


def stash_dataset(trainer: FinetuneRun) -> None:
    """Keep an un-uploaded local dataset next to the record so a resume can upload it."""
    from qfnb.dataset import Dataset  # deferred: loads pandas (`import qfnb.trainer` does not)

    load = trainer.ppl[0]
    if (isinstance(trainer.dataset, Dataset) and trainer.dataset.qianfan_dataset_id is None
            and load.state is None and not persist.disabled() and trainer.dataset_file is None):
        path = persist.pipeline_dir() / f"{trainer.id}.data.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        trainer.dataset.save(data_file=path)
        trainer.dataset_file = str(path)


def _dataset_ref(trainer: FinetuneRun) -> dict[str, Any]:
    from qfnb.dataset import Dataset  # deferred: loads pandas (`import qfnb.trainer` does not)

    ds = trainer.dataset
    if isinstance(ds, Uploaded):
        return {}
    if isinstance(ds, Dataset):
        if ds.qianfan_dataset_id is not None:
            return {"qianfan_dataset_id": ds.qianfan_dataset_id}
        return {"file": trainer.dataset_file}
    return {"ref": ds}


def record_of(trainer: FinetuneRun) -> dict[str, Any]:
    """The trainer's record as saved."""
    return {
        "id": trainer.id, "case_type": "Finetune", "name": trainer.name, "created": trainer.created,
        "updated": time.time(), "status": trainer.status, "current_action": trainer.ppl.current,
        "init_params": {
            "train_type": trainer.train_type,
            "train_config": trainer.train_config.model_dump(mode="json", exclude_none=True),
            "deploy_config": trainer.deploy_config.model_dump(mode="json") if trainer.deploy_config else None,
            "model_not_publish": trainer.model_not_publish, "dataset": _dataset_ref(trainer),
            **_mode_of(trainer),
        },
        "actions": trainer.ppl.records(),
    }


def _mode_of(trainer: FinetuneRun) -> dict[str, Any]:
    """A trainer's train mode other than SFT, with a RFT run's reward source (a grader is saved whole,
    a function as ``"client"``: code is not saved)."""
    mode, reward = trainer.train_action.train_mode, trainer.train_action.reward
    if mode_row(mode).default:
        return {}
    return {"train_mode": mode, **({"reward": reward if isinstance(reward, dict) else "client"} if reward else {})}


def _saved_dataset(rec: dict[str, Any], id: str) -> Any:
    """The dataset a saved trainer was given (``Uploaded`` once its load step finished)."""
    from qfnb.dataset import Dataset  # deferred: loads pandas (`import qfnb.trainer` does not)

    ref = (rec.get("init_params") or {}).get("dataset") or {}
    if ref.get("qianfan_dataset_id") is not None:
        return Dataset(qianfan_dataset_id=ref["qianfan_dataset_id"])
    if ref.get("file"):
        return Dataset.load(data_file=ref["file"])
    if ref.get("ref") is not None:
        return ref["ref"]
    if (rec.get("actions") or [{}])[0].get("state") == "Done":  # its saved output is what training needs
        return Uploaded()
    raise ValidationError("dataset", f"trainer {id!r} was saved before its dataset was uploaded "
                          "and the local copy is gone; create a new trainer")


def load_trainer(cls: Callable[..., RunT], id: str, **kwargs: Any) -> RunT:
    """Rebuild the trainer saved as ``id`` (``kwargs``: event_handler, config, eval_dataset, evaluators,
    reward)."""
    rec = persist.read_record(id)
    params = rec.get("init_params") or {}
    if params.get("train_mode"):
        kwargs["train_mode"] = params["train_mode"]
    if kwargs.get("reward") is None:
        if params.get("reward") == "client":
            raise ValidationError("reward", f"trainer {id!r} is scored by a reward function: code is not saved, "
                                  "pass it again, load(id, reward=fn)")
        kwargs["reward"] = params.get("reward")
    dataset = _saved_dataset(rec, id)
    if any(a.get("type") == "EvaluateAction" for a in rec.get("actions") or []) and not kwargs.get("evaluators"):
        raise ValidationError("evaluators", f"trainer {id!r} has an evaluation step: pass "
                              "eval_dataset= and evaluators= to load() again")
    dc = params.get("deploy_config")
    trainer = cls(train_type=params.get("train_type", ""), dataset=dataset,
                  train_config=TrainConfig(**(params.get("train_config") or {})),
                  deploy_config=DeployConfig(**dc) if dc else None, name=rec.get("name", ""),
                  model_not_publish=bool(params.get("model_not_publish")), id=rec["id"], **kwargs)
    trainer.ppl.restore_actions(rec.get("actions") or [], int(rec.get("current_action", 0)))
    trainer.created = rec.get("created", trainer.created)
    trainer.dataset_file = ((params.get("dataset") or {}).get("file"))
    return trainer


def list_summaries() -> list[TrainerSummary]:
    """Saved trainers, newest first."""
    return [TrainerSummary(id=r.get("id"), name=r.get("name"), status=r.get("status"), updated=r.get("updated"))
            for r in persist.list_records()]

"""What a fine-tune is given, checked before anything is sent: its data and the run it continues."""

from __future__ import annotations

from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.protocol.console.train_modes import mode_row

from .configs import DatasetConfig


def previous_task(task_id: str | None, trainer: Any) -> str | None:
    """The run an incremental fine-tune continues: ``previous_task_id``, or ``previous_trainer``'s."""
    if trainer is not None:
        if task_id is not None:
            raise ValidationError("previous_task_id", "give previous_task_id= or previous_trainer=, not both")
        action = getattr(trainer, "train_action", None)
        task_id = getattr(action, "task_id", None)
        if task_id is None:
            raise ValidationError("previous_trainer", "that trainer has not started a training run yet")
    return task_id


def as_dataset(dataset: Any, train_mode: str = "SFT") -> Any:
    """Lists and DataFrames become Datasets; local data is validated now (chat-SFT schema, or
    ``train_mode``'s format: :class:`qfnb.dataset.schema.TrainModeData`), so a bad row is reported
    before anything is sent."""
    import pandas as pd

    from qfnb.dataset import Dataset  # deferred: loads pandas (`import qfnb.trainer` does not)
    from qfnb.dataset.schema import TrainModeData  # deferred: with the Dataset, as above

    if dataset is None:
        raise ValidationError("dataset", "a Dataset, platform dataset id or bos:/ URI is required")

    if isinstance(dataset, DatasetConfig):
        dataset.datasets = [as_dataset(d, train_mode) for d in dataset.datasets]
        return dataset
    if isinstance(dataset, pd.DataFrame):
        dataset = Dataset.load(dataframe=dataset)
    elif isinstance(dataset, list):
        dataset = Dataset.create_from_pyobj(dataset)
    if isinstance(dataset, Dataset) and dataset.qianfan_dataset_id is None:
        if mode_row(train_mode).records and not isinstance(dataset.schema, TrainModeData):
            dataset.schema = TrainModeData(train_mode)  # the upload checks the rows with it too
        dataset.validate()  # names file lines (1-based) for a file, row positions for a frame
    return dataset

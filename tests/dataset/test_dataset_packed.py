"""A still-packed dataset (one ``_pack`` cell per conversation, as the official SDK's data
sources load it) is validated turn by turn, and a data source written for the official SDK
(its ``save(table)`` reads ``table.inner_table``) saves a qfnb Dataset."""

from __future__ import annotations

import importlib.util
from typing import Any

import pandas as pd
import pytest

from qfnb.dataset import Dataset
from qfnb.dataset.schema import DatasetValidationError, QianfanNonSortedConversation, QianfanSortedConversation

GOOD = {"prompt": "12", "response": [["12"]]}


def _packed(*conversations: Any) -> Dataset:
    return Dataset(pd.DataFrame({"_pack": list(conversations)}))


def test_a_packed_dataset_is_checked_turn_by_turn() -> None:
    ds = _packed([GOOD, GOOD], [GOOD])
    assert ds.is_dataset_packed()
    for schema in (QianfanNonSortedConversation(), QianfanSortedConversation()):
        ds.validate(schema)
    with pytest.raises(DatasetValidationError) as err:
        _packed([GOOD, GOOD], [GOOD, {"prompt": "12"}]).validate(QianfanNonSortedConversation())
    (problem,) = err.value.problems
    assert (problem.row, problem.field, problem.message) == (1, "_pack[1].response", "is missing")
    with pytest.raises(DatasetValidationError, match="empty conversation"):
        _packed([]).validate()
    with pytest.raises(DatasetValidationError, match=r"_pack\[0\].response"):
        _packed({"prompt": "12", "response": [[]]}).validate()  # one packed row (a dict), empty answer


def test_nothing_is_written_when_a_packed_dataset_is_invalid(tmp_path: Any) -> None:
    target = tmp_path / "out.jsonl"
    with pytest.raises(DatasetValidationError):
        _packed([{"prompt": ""}]).save(data_file=target, schema=QianfanNonSortedConversation())
    assert not target.exists()


class OfficialStyleSource:
    """A data source as the official SDK's docs write one: ``save`` reads ``table.inner_table``."""

    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def fetch(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def save(self, table: Any, **kwargs: Any) -> bool:
        self.saved = table.inner_table.to_pylist()
        return True


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_inner_table_is_a_pyarrow_snapshot_for_official_data_sources() -> None:
    source = OfficialStyleSource()
    Dataset.create_from_pyobj([GOOD]).save(source)
    assert source.saved == [GOOD]


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_inner_table_names_pyarrow_when_it_is_missing() -> None:
    with pytest.raises(ImportError, match="pip install pyarrow"):
        _ = Dataset.create_from_pyobj([GOOD]).inner_table

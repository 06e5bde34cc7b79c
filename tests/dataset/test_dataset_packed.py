"""A still-packed dataset (one ``_pack`` cell per conversation, as the official SDK's data
sources load it) reads as its entries (``list()``, ``ds[i]``, iteration, ``map``/``filter``),
is validated turn by turn, and a data source written for the official SDK (its
``save(table)`` reads ``table.inner_table``) saves a qfnb Dataset."""

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


class PackedSource:
    """A data source whose table is packed: one conversation per ``_pack`` cell."""

    def __init__(self, conversations: list[Any]) -> None:
        self.rows = [{"_pack": c} for c in conversations]

    def fetch(self, **kwargs: Any) -> Any:
        return Dataset(pd.DataFrame(self.rows))

    def save(self, table: Any, **kwargs: Any) -> bool:
        self.rows = table.to_pylist()
        return True


def test_a_packed_dataset_lists_its_entries_as_the_official_sdk_does(tmp_path: Any) -> None:
    conv = [GOOD, {"prompt": "and?", "response": [["so"]]}]
    source = PackedSource([conv, [GOOD]])
    ds = Dataset.load(source, organize_data_as_group=False)
    assert ds.is_dataset_packed() and ds.list() == [conv, [GOOD]]
    assert ds.list()[0][0]["prompt"] == "12" and ds.list(1) == ds[1] == [GOOD]
    assert ds.list([1, 0]) == ds.list(slice(0, 2))[::-1] and list(ds) == [conv, [GOOD]]
    assert ds.to_pylist() == source.rows and ds.col_list() == {"_pack": [conv, [GOOD]]}
    ds.save(schema=QianfanSortedConversation())  # validated turn by turn, saved back as packed rows
    assert source.rows == [{"_pack": conv}, {"_pack": [GOOD]}]
    ds.save(data_file=tmp_path / "out.jsonl")  # one conversation per line, the platform's layout
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[1] == '[{"prompt": "12", "response": [["12"]]}]'
    assert Dataset.load(tmp_path / "out.jsonl").groups() == ds.groups() == [conv, [GOOD]]
    assert ds.filter(lambda entry: len(entry) > 1, should_create_new_obj=True).list() == [conv]
    ds.map(lambda entry: entry[:1])  # each entry in, the new entry out
    assert ds.list() == [[GOOD], [GOOD]] and ds.is_dataset_packed()
    assert Dataset.load(PackedSource([conv])).groups() == [conv]  # by default the source is unpacked, grouped


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

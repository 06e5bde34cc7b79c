"""``Table`` (``qfnb.dataset.table``): rows and the official operations with no data source, and
the official answers to each kind of addition and each bad argument."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from qfnb.dataset import Dataset, Table
from qfnb.errors import ValidationError

TURN = {"prompt": "p", "response": "r"}


def _grouped() -> Table:
    return Table(inner_table=pd.DataFrame([{**TURN, "_group": 0}, {**TURN, "_group": 0}, {**TURN, "_group": 1}]))


def test_a_table_is_built_from_any_table_and_a_dataset_is_a_table() -> None:
    class ArrowLike:  # what Table reads of a pyarrow.Table
        def to_pylist(self) -> list[dict[str, Any]]:
            return [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]

        def to_pandas(self) -> pd.DataFrame:
            raise AssertionError("to_pylist is read: python values, not numpy")

    table = Table(inner_table=ArrowLike())
    assert table.list() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}] and table.column_number() == 2
    assert isinstance(table.take(1), Table) and table.list((0, 1)) == table.list(slice(0, 2))
    assert isinstance(Dataset.create_from_pyobj([TURN]), Table)
    assert Table(inner_table=Dataset.create_from_pyobj([TURN])).list() == [TURN]
    with pytest.raises(ValidationError, match=r"inner_table: give the rows once"):
        Dataset(pd.DataFrame({"a": [1]}), inner_table=ArrowLike())
    with pytest.raises(ValidationError, match=r"inner_table: gave list, not a table"):
        Table(inner_table=[{"a": 1}])


def test_rows_are_chosen_by_position_and_columns_by_name() -> None:
    table = Table(inner_table=pd.DataFrame({"a": [1, 2, 3]}))
    with pytest.raises(ValidationError, match=r"list\(\) gives rows; for columns use col_list\('a'\)"):
        table.list("a")
    with pytest.raises(ValidationError, match="not object"):
        table.list(object())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="slice"):
        table.col_list(slice(0, 2))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no column 'z'") as info:
        table.col_list("z")
    assert isinstance(info.value, ValueError)  # the official SDK raises ValueError
    assert table["a"] == [1, 2, 3]


def test_a_grouped_table_adds_rows_to_the_last_or_a_new_conversation() -> None:
    table = _grouped()
    assert table.append(TURN).list()[-1]["_group"] == 1  # joins the last conversation
    assert table.append(TURN, add_new_group=True).list()[-1]["_group"] == 2
    assert [r["_group"] for r in table.append([TURN, TURN], add_new_group=True).list()[-2:]] == [3, 3]
    assert [r["_group"] for r in table.append([TURN, TURN], add_new_group=True, is_grouped=False).list()[-2:]] == [4, 5]
    table = _grouped().insert([TURN, TURN], 1, group_id=12, is_grouped=False)
    assert [r["_group"] for r in table.list()] == [0, 12, 13, 0, 1]
    convs = [[TURN, TURN], [TURN]]  # conversations keep their own grouping, after the last group
    assert [r["_group"] for r in _grouped().append(convs).list()[-3:]] == [2, 2, 3]


def test_a_packed_table_adds_entries() -> None:
    table = Table(inner_table=pd.DataFrame({"_pack": [[TURN, TURN], [TURN]]}))
    table.append(TURN).append([TURN, TURN])
    assert table.list()[-2:] == [[TURN], [TURN, TURN]]
    texts = Table(inner_table=pd.DataFrame({"_pack": ["hello", "world"]})).insert("nihao", 0).append(["a", "b"])
    assert texts.list() == ["nihao", "hello", "world", "a", "b"]
    with pytest.raises(ValidationError, match=r"a packed dataset takes .* got int"):
        texts.append(3)


def test_bad_additions_are_refused_before_anything_changes() -> None:
    table = Table(inner_table=pd.DataFrame({"x": [1, 2, 3, 4]}))
    for bad, named in ((123, "got int"), (["not a dict"], "got a list of str"), ([], "got an empty list")):
        with pytest.raises(ValidationError, match=named):
            table.append(bad)
    for position in (-1, 5):
        with pytest.raises(ValidationError, match=r"position from 0 to 4, not"):
            table.insert({"x": 0}, position)
    with pytest.raises(ValidationError, match="must return True or False"):
        table.filter(lambda r: r["x"])  # type: ignore[arg-type,return-value]
    with pytest.raises(ValidationError, match=r"columns are added as \{"):
        table.col_append(123)  # type: ignore[arg-type]
    for bad_column in ({"name": "test"}, {"data": "abc"}, {1: ["a", "b", "c", "d"]}):
        with pytest.raises(TypeError, match="elem"):
            table.col_append(bad_column)
    with pytest.raises(ValidationError, match=r"elem\.t: must be a list of 4 values"):
        table.col_append({"t": ["a"]})
    assert table.to_pydict() == {"x": [1, 2, 3, 4]}
    table.col_insert({"name": "t", "data": list("abcd")}, 0)
    assert table.col_names() == ["t", "x"] and table.column_number() == 2

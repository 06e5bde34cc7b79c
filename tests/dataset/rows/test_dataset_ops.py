"""The official SDK's Dataset operations (qfnb.dataset.rows._ops): in place by default, returning
the dataset; ``should_create_new_obj=True`` for a new one."""

from __future__ import annotations

import pytest

from qfnb.dataset import Dataset
from qfnb.errors import ValidationError


def _ds() -> Dataset:
    return Dataset.create_from_pyobj([{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)])


def test_row_operations_change_the_dataset_in_place_and_chain() -> None:
    ds = _ds()
    same = ds.map(lambda r: {**r, "prompt": r["prompt"].upper()}).filter(lambda r: r["prompt"] != "Q0")
    assert same is ds and ds.list(0) == {"prompt": "Q1", "response": "a1"} and len(ds) == 3
    ds.append({"prompt": "x", "response": "y"})
    ds.insert([{"prompt": "first", "response": "z"}], 0)
    assert ds.to_pylist()[0]["prompt"] == "first" and ds.list(-1)["prompt"] == "x"
    del ds[0]
    ds.delete(len(ds) - 1)
    assert ds["prompt"] == ["Q1", "Q2", "Q3"] and ds.row_number() == 3
    copy = ds.filter(lambda r: False, should_create_new_obj=True)
    assert len(copy) == 0 and len(ds) == 3
    assert ds.list(slice(0, 2)) == [{"prompt": "Q1", "response": "a1"}, {"prompt": "Q2", "response": "a2"}]
    for outside in (3, -1):  # rows are 0..n-1, as officially (an IndexError, and the official OverflowError)
        with pytest.raises(IndexError, match=r"rows are numbered 0 to 2") as info:
            ds.delete(outside)
        assert isinstance(info.value, OverflowError)
    with pytest.raises(TypeError, match="row 0"):
        ds.map(lambda r: [r])  # type: ignore[arg-type,return-value]


def test_column_operations() -> None:
    ds = _ds()
    assert ds.col_names() == ["prompt", "response"]
    assert ds.col_list("prompt") == {"prompt": ["q0", "q1", "q2", "q3"]}
    assert ds[["response"]] == {"response": ["a0", "a1", "a2", "a3"]}
    ds.col_append({"name": "score", "data": [1, 2, 3, 4]}).col_append({"tag": list("abcd")})
    ds.col_map(lambda col: {k.upper(): v for k, v in col.items()})
    assert ds.col_names() == ["PROMPT", "RESPONSE", "SCORE", "TAG"]
    ds.col_filter(lambda col: "SCORE" not in col)
    ds.col_delete("TAG")
    assert ds.col_names() == ["PROMPT", "RESPONSE"]
    ds.col_renames(["prompt", "response"]).select_columns(["response", "prompt"])
    assert ds.list(0) == {"response": "a0", "prompt": "q0"} and ds.col_names() == ["response", "prompt"]
    with pytest.raises(ValidationError, match=r"elem\.x"):
        ds.col_append({"x": [1]})  # one value for four rows
    with pytest.raises(KeyError, match="nope"):
        ds.col_delete("nope")


def test_pack_and_unpack_conversations() -> None:
    convs = [[{"prompt": "hi", "response": "yo"}, {"prompt": "and?", "response": "so"}],
             [{"prompt": "one", "response": "turn"}]]
    ds = Dataset.create_from_pyobj(convs)
    assert ds.is_dataset_grouped() and not ds.is_dataset_packed()
    ds.pack()
    assert ds.is_dataset_packed() and ds.list() == convs and ds.to_pylist() == [{"_pack": c} for c in convs]
    ds.unpack()
    assert ds.unpack().list() == [{**t, "_group": g} for g, c in enumerate(convs) for t in c]  # unpacked already
    ds.delete_group_column()
    with pytest.raises(ValidationError, match="_pack"):
        ds.unpack()  # neither packed nor grouped
    assert len(ds) == 3 and not ds.is_dataset_grouped()
    ds.add_default_group_column()
    assert ds["_group"] == [0, 1, 2]
    with pytest.raises(ValidationError, match="_group"):
        _ds().pack()


def test_dataset_id_is_the_platform_dataset() -> None:
    ds = Dataset(id=7)
    assert ds.id == ds.qianfan_dataset_id == 7 and ds.is_dataset_located_in_qianfan()
    assert "not loaded" in repr(ds)
    with pytest.raises(ValidationError, match="id"):
        Dataset(id=7, qianfan_dataset_id=8)


def test_a_platform_dataset_changed_in_place_becomes_local_data() -> None:
    import pandas as pd

    ds = Dataset(pd.DataFrame({"prompt": ["a", "b"], "response": ["x", "y"]}), qianfan_dataset_id=7)
    kept = ds.filter(lambda r: r["prompt"] == "a", should_create_new_obj=True)
    assert ds.id == 7 and kept.id is None
    ds.filter(lambda r: r["prompt"] == "a")
    assert ds.id is None and ds.list() == [{"prompt": "a", "response": "x"}]

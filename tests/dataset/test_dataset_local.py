"""Dataset loading, validation and pandas-like operations (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from qfnb.dataset import Dataset, DatasetValidationError, QianfanNonSortedConversation


def _write_jsonl(path: Path, items: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n", encoding="utf-8")
    return path


def test_load_jsonl_platform_layout_and_plain_rows(tmp_path: Path) -> None:
    f = _write_jsonl(tmp_path / "d.jsonl", [
        [{"prompt": "1+1?", "response": [["2"]]}],
        {"prompt": "capital of France?", "response": "Paris"},
    ])
    ds = Dataset.load(data_file=f)
    assert len(ds) == 2
    assert ds[0] == {"prompt": "1+1?", "response": [["2"]]}
    assert ds["prompt"] == ["1+1?", "capital of France?"]
    assert not ds.is_grouped
    ds.validate()


def test_grouped_multiturn_roundtrip(tmp_path: Path) -> None:
    conv = [[{"prompt": "hi", "response": [["hello"]]}, {"prompt": "and?", "response": [["bye"]]}],
            [{"prompt": "q", "response": [["a"]]}]]
    ds = Dataset.create_from_pyobj(conv)
    assert ds.is_grouped and len(ds) == 3
    assert [len(g) for g in ds.groups()] == [2, 1]
    out = tmp_path / "out.jsonl"
    ds.save(data_file=out)
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines == conv
    again = Dataset.load(data_file=out)
    assert again.groups() == conv


def test_validation_collects_every_problem_with_row_and_field(tmp_path: Path) -> None:
    f = _write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "ok", "response": "fine"},
        {"prompt": "", "response": "x"},
        {"prompt": "p", "response": [["a", 3]]},
        {"response": "no prompt"},
        {"prompt": "p2"},
    ])
    with pytest.raises(DatasetValidationError) as info:
        Dataset.load(data_file=f, schema=QianfanNonSortedConversation())
    got = [(p.row, p.field) for p in info.value.problems]
    assert got == [(1, "prompt"), (2, "response"), (3, "prompt"), (4, "response")]
    text = str(info.value)
    assert "bad.jsonl line 2, field 'prompt'" in text and "bad.jsonl line 5, field 'response'" in text  # 1-based lines
    assert isinstance(info.value, ValueError)
    # an un-annotated prompt set accepts the row without response
    QianfanNonSortedConversation(is_annotated=False).validate([{"prompt": "p2"}])


def test_csv_json_dataframe_and_pyobj_sources(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    pd.DataFrame({"prompt": ["a", "b"], "response": ["x", "y"]}).to_csv(csv, index=False)
    assert Dataset.load(data_file=csv).list() == [{"prompt": "a", "response": "x"},
                                                   {"prompt": "b", "response": "y"}]
    js = tmp_path / "d.json"
    js.write_text(json.dumps({"prompt": ["a"], "response": ["x"]}), encoding="utf-8")
    assert len(Dataset.load(data_file=js)) == 1
    df = pd.DataFrame({"prompt": ["p"]}, index=[7])
    assert Dataset.load(dataframe=df)[0] == {"prompt": "p"}
    assert Dataset.create_from_pyobj(["t1", "t2"]).columns == ["text"]
    with pytest.raises(ValueError, match="exactly one"):
        Dataset.load(data_file=csv, dataframe=df)
    with pytest.raises(ValueError, match="does not exist"):
        Dataset.load(data_file=tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        Dataset.load(data_file=bad)


def test_pandas_like_operations() -> None:
    ds = Dataset.create_from_pyobj([{"prompt": f"q{i}", "response": f"a{i}"} for i in range(10)])
    assert len(ds.take(3)) == 3
    assert ds[2:4].list() == [{"prompt": "q2", "response": "a2"}, {"prompt": "q3", "response": "a3"}]
    assert len(ds.sample(4, seed=1)) == 4
    shuffled = ds.shuffle(seed=3)
    assert sorted(shuffled["prompt"]) == sorted(ds["prompt"]) and shuffled["prompt"] != ds["prompt"]
    upper = ds.map(lambda r: {**r, "prompt": r["prompt"].upper()}, should_create_new_obj=True)
    assert upper[0]["prompt"] == "Q0" and ds[0]["prompt"] == "q0"
    assert ds.filter(lambda r: r["prompt"].endswith(("1", "2")), should_create_new_obj=True).list()[0][
        "prompt"] == "q1"
    more = ds.append({"prompt": "x", "response": "y"}, should_create_new_obj=True)
    assert len(more) == 11 and len(ds) == 10
    assert isinstance(ds.to_pandas(), pd.DataFrame)
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(KeyError):
        ds["nope"]
    with pytest.raises(TypeError, match="row 0"):
        ds.map(lambda r: None)  # type: ignore[arg-type,return-value]


def test_validation_errors_name_file_lines_from_1_and_frame_positions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A user counts a file's lines from 1 (blank lines included); a frame's rows by position."""
    import pandas as pd

    from qfnb.dataset import Dataset
    from qfnb.dataset.schema import DatasetValidationError

    path = tmp_path / "qa.jsonl"
    path.write_text('{"prompt": "q1", "response": "a1"}\n\n{"prompt": "", "response": "a2"}\n', encoding="utf-8")
    with pytest.raises(DatasetValidationError, match=r"qa\.jsonl line 3, field 'prompt'"):
        Dataset.load(data_file=path).validate()
    csv = tmp_path / "qa.csv"
    csv.write_text("prompt,response\nq1,a1\nq2,\n", encoding="utf-8")
    with pytest.raises(DatasetValidationError, match=r"qa\.csv line 3, field 'response'"):
        Dataset.load(data_file=csv).validate()
    frame = pd.DataFrame({"prompt": ["q1", None], "response": ["a1", "a2"]})
    with pytest.raises(DatasetValidationError, match=r"row 1, field 'prompt'"):
        Dataset.load(dataframe=frame).validate()


def test_a_file_of_one_turn_conversations_is_saved_back_as_conversations(tmp_path: Path) -> None:
    """As the official SDK reads a JSON-lines file of lists (a packed table) and writes it back: each
    line stays a list; the rows read as plain rows all the same."""
    items = [[{"prompt": f"q{i}", "response": [[f"a{i}"]]}] for i in range(3)]
    f = _write_jsonl(tmp_path / "qa.jsonl", items)
    ds = Dataset.load(data_file=f)
    assert ds.list() == [i[0] for i in items] and ds.col_list("prompt") == {"prompt": ["q0", "q1", "q2"]}
    ds.save(data_file=tmp_path / "saved.jsonl")
    assert [json.loads(x) for x in (tmp_path / "saved.jsonl").read_text().splitlines()] == items
    ds.take(2).save(data_file=tmp_path / "two.json")  # a part of it, to .json: the list of conversations
    assert json.loads((tmp_path / "two.json").read_text()) == items[:2]
    plain = _write_jsonl(tmp_path / "plain.jsonl", [i[0] for i in items])  # rows stay rows
    Dataset.load(data_file=plain).save(data_file=tmp_path / "rows.jsonl")
    assert [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()] == [i[0] for i in items]
    mixed = _write_jsonl(tmp_path / "mixed.jsonl", [items[0], items[1][0]])  # not all lists: rows
    Dataset.load(data_file=mixed).save(data_file=tmp_path / "m.jsonl")
    assert [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()] == [items[0][0], items[1][0]]


def test_save_takes_exactly_one_target_and_writes_nothing_otherwise(tmp_path: Path) -> None:
    """Two targets, a source given positionally beside ``destination=``, or none with nothing to save
    back to: a ValidationError naming the choice, and no file written."""
    from qfnb._core.errors import ValidationError
    from qfnb.dataset.data_source import FileDataSource

    ds = Dataset.create_from_pyobj([{"prompt": "q", "response": "a"}])
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    for args, kwargs in [((one,), {"qianfan_dataset_id": 7}),
                         ((), {"destination": FileDataSource(one), "qianfan_dataset_create_args": {"name": "x"}}),
                         ((FileDataSource(one),), {"destination": FileDataSource(two)})]:
        with pytest.raises(ValidationError, match="give exactly one of data_file, destination"):
            ds.save(*args, **kwargs)
    with pytest.raises(ValidationError, match="no source to save back to"):
        ds.save()
    assert not one.exists() and not two.exists()
    ds.save(FileDataSource(one))  # a source alone, positionally, as the official SDK takes it
    assert [json.loads(x) for x in one.read_text().splitlines()] == [{"prompt": "q", "response": "a"}]

"""A dataset import (``bos:/`` files) reads and writes its rows a batch at a time: its memory peak is
a batch, not the file (a ``.json`` list too, read an item at a time); a bad line anywhere still leaves the
dataset as it was; a ``.txt`` file read a paragraph at a time gives the rows the whole text gives; a file
saved with a UTF-8 byte-order mark reads as the same file without one."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from qfnb.local.domain.state import datasets
from qfnb.local.domain.state.datasets import ObjectStore, dataset_rows, import_files
from qfnb.local.domain.state.values import BodyError
from qfnb.protocol.console import train_formats

DATASET = {"id": 1, "sid": "ds-streamed"}


def _object(objects: ObjectStore, key: str, lines: list[str], repeat: int = 1) -> str:
    path = objects.path("b", key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(repeat):
            fh.writelines(lines)
    return f"bos:/b/{key}"


def _imports_within_an_eighth_of_its_size(tmp_path: Path, objects: ObjectStore, uri: str, rows: int) -> None:
    size = objects.from_uri(uri).stat().st_size
    tracemalloc.start()
    try:
        count = import_files(tmp_path / "data", objects, DATASET, [uri])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < size / 8, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"


def test_a_large_import_holds_a_batch_not_the_file(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects")
    line = json.dumps({"prompt": "p" * 2000, "response": "r" * 2000}) + "\n"  # 4 KiB a row
    uri = _object(objects, "big.jsonl", [line], repeat=4096)  # 16 MiB
    _imports_within_an_eighth_of_its_size(tmp_path, objects, uri, 4096)


def test_a_bad_line_in_a_later_file_leaves_the_dataset_as_it_was(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "WRITE_BATCH", 1024)  # many writes before the bad line
    objects = ObjectStore(tmp_path / "objects")
    first = _object(objects, "first.jsonl", [json.dumps({"prompt": "kept", "response": "yes"}) + "\n"])
    assert import_files(tmp_path / "data", objects, DATASET, [first]) == 1
    good = _object(objects, "good.jsonl", [json.dumps({"prompt": f"q{i}" * 50, "response": "a"}) + "\n"
                                           for i in range(200)])
    bad = _object(objects, "bad.jsonl", [json.dumps({"prompt": "q", "response": "a"}) + "\n", "{not json\n"])
    with pytest.raises(BodyError, match=r"files\[1\]: bad.jsonl line 2 is not JSON"):
        import_files(tmp_path / "data", objects, DATASET, [good, bad])
    assert dataset_rows(tmp_path / "data", DATASET) == [{"prompt": "kept", "response": "yes"}]
    folder = tmp_path / "data" / "datasets" / DATASET["sid"]
    assert sorted(p.name for p in folder.iterdir()) == ["data.jsonl"]  # the staged rows are gone too
    assert import_files(tmp_path / "data", objects, DATASET, [good]) == 201  # and it takes the next import


def test_rows_read_when_the_process_dies_never_reach_the_dataset(tmp_path: Path) -> None:
    """The rows are staged until every one is read: the data file changes only in the final append, so a
    daemon killed while it reads a large import leaves the dataset as it was."""
    objects = ObjectStore(tmp_path / "objects")
    first = _object(objects, "first.jsonl", [json.dumps({"prompt": "kept", "response": "yes"}) + "\n"])
    assert import_files(tmp_path / "data", objects, DATASET, [first]) == 1
    data = tmp_path / "data" / "datasets" / DATASET["sid"] / "data.jsonl"
    before = data.read_bytes()

    def rows_then_death() -> Iterator[dict[str, str]]:
        for i in range(5000):
            yield {"prompt": f"q{i}" * 40, "response": "a"}
        assert data.read_bytes() == before, "rows reached the dataset before all were read"
        raise SystemExit("killed")  # as the process dies: nothing after this runs

    with pytest.raises(SystemExit):
        datasets.append_rows(tmp_path / "data", DATASET, rows_then_death())
    assert data.read_bytes() == before


def test_an_append_whose_commit_fails_is_cut_back(tmp_path: Path) -> None:
    """The record's update (``commit``) runs with the rows in, under the lock: when it fails, the data
    file is cut back to its size before and no journal is left."""
    datasets.append_rows(tmp_path / "data", DATASET, [{"prompt": "kept", "response": "yes"}])
    folder = tmp_path / "data" / "datasets" / DATASET["sid"]
    before = (folder / "data.jsonl").read_bytes()
    seen: list[int] = []

    def commit(count: int) -> None:
        seen.append(count)
        assert (folder / datasets.APPEND_JOURNAL).read_text() == str(len(before))
        raise OSError("the store is gone")

    with pytest.raises(OSError, match="the store is gone"):
        datasets.append_rows(tmp_path / "data", DATASET, [{"prompt": f"q{i}", "response": "a"} for i in range(50)],
                             commit)
    assert seen == [51]
    assert (folder / "data.jsonl").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["data.jsonl"]


def test_recover_undoes_an_append_a_kill_cut_short(tmp_path: Path) -> None:
    """What a SIGKILL mid-append leaves (the journal, a torn last line, the part file) is undone on
    start; a dataset with no journal keeps its rows (only its stale staged files go)."""
    datasets.append_rows(tmp_path / "data", DATASET, [{"prompt": "kept", "response": "yes"}])
    other = {"id": 2, "sid": "ds-other"}
    datasets.append_rows(tmp_path / "data", other, [{"prompt": "other", "response": "yes"}])
    folder = tmp_path / "data" / "datasets" / DATASET["sid"]
    before = (folder / "data.jsonl").read_bytes()
    (folder / datasets.APPEND_JOURNAL).write_text(str(len(before)))
    with open(folder / "data.jsonl", "ab") as data:
        data.write(b'{"prompt": "half a row", "resp')
    (folder / ".data.jsonl.0123456789ab.part").write_text("staged\n")
    (tmp_path / "data" / "datasets" / "ds-other" / ".data.jsonl.ba9876543210.part").write_text("staged\n")

    assert datasets.recover(tmp_path / "data") == [DATASET["sid"]]
    assert (folder / "data.jsonl").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["data.jsonl"]
    assert datasets.stored_count(tmp_path / "data", other) == 1
    assert sorted(p.name for p in (tmp_path / "data" / "datasets" / "ds-other").iterdir()) == ["data.jsonl"]
    assert datasets.recover(tmp_path / "data") == []


def test_plain_text_read_by_paragraph_gives_the_rows_of_the_whole_text(tmp_path: Path) -> None:
    text = "\n\nfirst para\nline two\n\n\nsecond\r\n\r\nthird \n \nstill third\n\n\n\n  fourth  \n\n"
    path = tmp_path / "book.txt"
    path.write_bytes(text.encode("utf-8"))
    whole = [train_formats.to_wire(t) for t in train_formats.text_chunks(path.read_text(encoding="utf-8"))]
    assert [row["record"] for row in datasets.iter_file_rows(path)] == whole
    assert len(whole) == 4


def test_a_large_json_list_is_read_an_item_at_a_time(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects")
    item = json.dumps([{"prompt": "p" * 2000, "response": "r" * 2000}])  # a conversation of one turn
    uri = _object(objects, "big.json", ["[\n", ",\n".join([item] * 4096), "\n]\n"])  # 16 MiB
    _imports_within_an_eighth_of_its_size(tmp_path, objects, uri, 4096)


def test_a_json_list_cut_short_yields_its_whole_items_then_names_where_it_broke(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('[{"prompt": "a", "response": "1"}, {"prompt": "b", "response": "2"}, {"prompt": "c", "resp',
                    encoding="utf-8")
    rows = datasets.iter_file_rows(path)
    assert [next(rows)["prompt"], next(rows)["prompt"]] == ["a", "b"]  # read before the end was reached
    with pytest.raises(ValueError, match=r"cut.json is not JSON \(after item 2 of its list\)"):
        next(rows)


def test_json_files_read_as_before_one_record_or_a_list_numbers_kept(tmp_path: Path) -> None:
    one = tmp_path / "one.JSON"
    one.write_text(json.dumps({"prompt": "solo", "response": ["only"]}, indent=2), encoding="utf-8")
    assert list(datasets.iter_file_rows(one)) == [{"prompt": "solo", "response": "only"}]
    listed = tmp_path / "list.json"
    record = {"prompt": "q", "chosen": "good", "rejected": "bad", "score": 0.25, "n": 3}
    listed.write_text(json.dumps([record, [{"prompt": "x", "response": "y"}]], indent=1), encoding="utf-8")
    rows = list(datasets.iter_file_rows(listed))
    assert [r.get("record") for r in rows] == [record, None] and rows[1]["prompt"] == "x"
    assert type(rows[0]["record"]["score"]) is float and type(rows[0]["record"]["n"]) is int
    empty = tmp_path / "empty.json"
    empty.write_text("  []\n", encoding="utf-8")
    assert list(datasets.iter_file_rows(empty)) == []


@pytest.mark.parametrize("name", ["bom.jsonl", "bom.json", "bom.txt"])
def test_a_file_saved_with_a_utf8_byte_order_mark_reads_as_without_one(tmp_path: Path, name: str) -> None:
    text = {"bom.jsonl": '{"prompt": "héllo", "response": "ok"}\n',
            "bom.json": '[{"prompt": "héllo", "response": "ok"}]',
            "bom.txt": "héllo world\n\nsecond paragraph\n"}[name]
    plain, marked = tmp_path / "plain" / name, tmp_path / "marked" / name
    for path, data in ((plain, text.encode("utf-8")), (marked, b"\xef\xbb\xbf" + text.encode("utf-8"))):
        path.parent.mkdir()
        path.write_bytes(data)
    assert list(datasets.iter_file_rows(marked)) == list(datasets.iter_file_rows(plain)) != []

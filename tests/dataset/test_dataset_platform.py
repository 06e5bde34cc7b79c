"""Dataset.save to the platform against the cloud double: create → BOS PUT → import → release."""

from __future__ import annotations

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset, DatasetValidationError
from qfnb.dataset.consts import QianfanDatasetPackColumnName
from qfnb.dataset.data_source import QianfanDataSource
from qfnb.protocol.wires.qianfan.signing import verify
from tests.fakes.console_cloud import ConsoleCloud

ROWS = [{"prompt": "1+1?", "response": "2"}, {"prompt": "capital of France?", "response": [["Paris"]]}]


def test_save_uploads_imports_and_releases(cloud: ConsoleCloud, cfg: Config) -> None:
    ds = Dataset.create_from_pyobj(ROWS)
    out = ds.save(qianfan_dataset_create_args={"name": "my_ds"}, config=cfg)
    assert out is ds and isinstance(ds.qianfan_dataset_id, int)
    order = [r.params.get("Action") or r.path for r in cloud.fake.requests]
    assert order[0] == "/wenxinworkshop/dataset/create"
    put = next(r for r in cloud.fake.requests if r.method == "PUT")
    assert put.path.startswith("/bos/fake-bucket/ds/")
    verify(put.method, put.path, put.params, put.headers, "test_secret_key")
    assert order.index(put.path) < order.index("/wenxinworkshop/dataset/import") < order.index(
        "/wenxinworkshop/dataset/release")
    # the platform layout: every conversation a list of turns, response as [[str]]
    assert cloud.rows_of(ds.qianfan_dataset_id) == [
        [{"prompt": "1+1?", "response": [["2"]]}], [{"prompt": "capital of France?", "response": [["Paris"]]}]]
    info = cloud.datasets[ds.qianfan_dataset_id]
    assert info["importStatus"] == 2 and info["releaseStatus"] == 2
    assert cloud.calls("dataset/create")[0].json["templateType"] == 2000


def test_invalid_dataset_uploads_nothing(cloud: ConsoleCloud, cfg: Config) -> None:
    ds = Dataset.create_from_pyobj([{"prompt": "ok", "response": "x"}, {"prompt": 3, "response": "y"},
                                    {"prompt": "p", "response": [[1]]}])
    with pytest.raises(DatasetValidationError) as info:
        ds.save(qianfan_dataset_create_args={"name": "bad"}, config=cfg)
    assert [(p.row, p.field) for p in info.value.problems] == [(1, "prompt"), (2, "response")]
    assert cloud.fake.requests == []


def test_save_args_are_checked(cloud: ConsoleCloud, cfg: Config) -> None:
    ds = Dataset.create_from_pyobj(ROWS)
    with pytest.raises(ValueError, match=r"qianfan_dataset_create_args\.nme"):
        ds.save(qianfan_dataset_create_args={"nme": "x"}, config=cfg)
    with pytest.raises(ValueError, match="exactly one"):
        ds.save(config=cfg)
    assert cloud.fake.requests == []


def test_load_by_platform_id_downloads_lazily(cloud: ConsoleCloud, cfg: Config) -> None:
    conv = [[{"prompt": "hi", "response": [["hello"]]}, {"prompt": "more", "response": [["sure"]]}]]
    src = Dataset.create_from_pyobj([*ROWS, *[{"prompt": "x", "response": "y"}]])
    src.save(qianfan_dataset_create_args={"name": "d"}, config=cfg)
    ds = Dataset.load(qianfan_dataset_id=src.qianfan_dataset_id, config=cfg)
    assert "not loaded" in repr(ds) and cloud.calls("dataset/export") == []
    assert ds.list() == [{"prompt": "1+1?", "response": [["2"]]},
                         {"prompt": "capital of France?", "response": [["Paris"]]},
                         {"prompt": "x", "response": [["y"]]}]
    assert len(cloud.calls("dataset/export")) == 1 and len(cloud.calls("exportRecord")) == 2
    grouped = Dataset.create_from_pyobj(conv)
    grouped.save(qianfan_dataset_create_args={"name": "g"}, config=cfg)
    assert Dataset.load(qianfan_dataset_id=grouped.qianfan_dataset_id, config=cfg).groups() == conv


def test_properties_never_download(cloud: ConsoleCloud, cfg: Config) -> None:
    src = Dataset.create_from_pyobj(ROWS)
    src.save(qianfan_dataset_create_args={"name": "d"}, config=cfg)
    ds = Dataset.load(qianfan_dataset_id=src.qianfan_dataset_id, config=cfg)
    for prop in ("columns", "is_grouped"):
        with pytest.raises(RuntimeError, match=rf"Dataset\.{prop}: .*not downloaded yet; call ds\.fetch\(\)"):
            getattr(ds, prop)
    assert "not downloaded" in ds._repr_html_() and cloud.calls("dataset/export") == []
    assert ds.fetch() is ds and len(cloud.calls("dataset/export")) == 1
    assert ds.columns == ["prompt", "response"] and not ds.is_grouped
    assert len(cloud.calls("dataset/export")) == 1


def test_a_zipped_export_is_read_file_by_file() -> None:
    """The platform's export download is a zip of .jsonl files (one conversation per line)."""
    import io
    import zipfile

    from qfnb.dataset.remote._platform import _parse_export, _unzip_text

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("2.jsonl", '[{"prompt": "b", "response": [["B"]]}]')
        archive.writestr("1.jsonl", '[{"prompt": "a", "response": [["A"]]}]')
        archive.writestr("meta.csv", "ignored")
    items = _parse_export(_unzip_text(buf.getvalue()))
    assert [conv[0]["prompt"] for conv in items] == ["a", "b"]


def test_a_platform_data_source_fetches_the_official_packed_table(cloud: ConsoleCloud, cfg: Config) -> None:
    """``QianfanDataSource.fetch()`` gives the export as the official SDK's table: one ``_pack``
    row per conversation; ``Dataset(inner_table=...)`` keeps it packed, ``Dataset.load`` groups."""
    conv = [[{"prompt": "hi", "response": [["hello"]]}, {"prompt": "more", "response": [["sure"]]}],
            [{"prompt": "bye", "response": [["see you"]]}]]
    src = Dataset.create_from_pyobj(conv)
    src.save(qianfan_dataset_create_args={"name": "c"}, config=cfg)
    source = QianfanDataSource(id=src.qianfan_dataset_id, config=cfg)
    table = source.fetch()
    assert table.columns == [QianfanDatasetPackColumnName] and table.to_pylist() == [
        {QianfanDatasetPackColumnName: c} for c in conv]
    content = Dataset(inner_table=table).list()
    assert content == conv and content[0][0]["response"] == [["hello"]]
    assert Dataset.load(source=source).groups() == conv

"""``qfnb.utils.bos_uploader.BosHelper`` round trips against the local platform's BOS, and the
dataset upload going through it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from unittest.mock import patch

import httpx
import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset, QianfanDataSource
from qfnb.errors import InvalidArgumentError
from qfnb.resources.console.consts import DataTemplateType
from qfnb.utils.bos_uploader import (
    BosHelper,
    BosObject,
    generate_bos_file_parent_path,
    generate_bos_file_path,
    is_valid_bos_path,
    parse_bos_path,
)
from tests.fakes.console_cloud import ConsoleCloud
from tests.fakes.local_platform import ServedPlatform

BUCKET = "my-bucket"


@pytest.fixture
def helper(local_platform: ServedPlatform) -> BosHelper:
    return BosHelper(config=local_platform.config())


def test_content_and_file_round_trip(helper: BosHelper, tmp_path: Path) -> None:
    helper.upload_content_to_bos("你好\nworld", "/docs/a.txt", BUCKET)
    meta = helper.get_metadata(BUCKET, "/docs/a.txt")
    assert meta["content_length"] == len("你好\nworld".encode()) and meta["last_modified"]
    helper.get_object_as_file(BUCKET, "docs/a.txt", str(tmp_path / "a.txt"))
    assert (tmp_path / "a.txt").read_text("utf-8") == "你好\nworld"

    src = tmp_path / "data.jsonl"
    src.write_bytes(b'{"prompt": "1"}\n' * 3)
    helper.upload_file_to_bos(str(src), "docs/deep/data.jsonl", BUCKET)
    assert helper.get_file_size(BUCKET, "docs/deep/data.jsonl") == src.stat().st_size
    assert helper.check_if_file_existed_on_bos(BUCKET, "docs/deep/data.jsonl")
    assert helper.is_dir(BUCKET, "docs/deep") and not helper.is_dir(BUCKET, "docs/a.txt")

    top = helper.list_dir(BUCKET, "/docs/")
    assert [(o.key, o.size, o.is_dir) for o in top] == [("docs/a.txt", 12, False), ("docs/deep/", 0, True)]
    assert top[1] == BosObject("docs/deep/", is_dir=True) and top[0].last_modified.endswith("Z")
    assert [o.key for o in helper.list_dir(BUCKET, "docs/", only_deep1=False)] == ["docs/a.txt", "docs/deep/data.jsonl"]
    helper.copy_object(BUCKET, "docs/a.txt", "copies/a.txt")
    helper.get_object_as_file(BUCKET, "copies/a.txt", str(tmp_path / "b.txt"))
    assert (tmp_path / "b.txt").read_text("utf-8") == "你好\nworld"
    assert helper.get_bos_bucket_location(BUCKET) == "local"


def test_shared_url_reads_without_credentials(helper: BosHelper) -> None:
    helper.upload_content_to_bos(b"\x00\x01shared", "s/x.bin", BUCKET)
    url = helper.get_bos_file_shared_url("/s/x.bin", BUCKET)
    assert "authorization=bce-auth-v1" in url
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == b"\x00\x01shared"
    tampered = url.replace("s/x.bin", "s/y.bin")
    assert httpx.get(tampered).status_code in (401, 404)
    assert httpx.put(url, content=b"no").status_code == 403  # a link only reads


def test_delete_anyway(helper: BosHelper) -> None:
    helper.upload_content_to_bos("x", "gone/x.txt", BUCKET)
    helper.delete_bos_file_anyway(BUCKET, "/gone/x.txt")
    assert not helper.check_if_file_existed_on_bos(BUCKET, "gone/x.txt")
    assert helper.get_file_size(BUCKET, "gone/x.txt") == 0
    helper.delete_bos_file_anyway(BUCKET, "gone/x.txt")  # already gone: no error, as officially
    assert helper.list_dir(BUCKET, "gone/") == []


@pytest.mark.parametrize(("call", "field"), [
    (lambda h: h.upload_content_to_bos("x", "a/../b", BUCKET), "remote_file_path"),
    (lambda h: h.upload_content_to_bos("x", "/", BUCKET), "remote_file_path"),
    (lambda h: h.upload_content_to_bos("x", "a.txt", ""), "bucket_name"),
    (lambda h: h.upload_content_to_bos("x", "a.txt", "a/b"), "bucket_name"),
    (lambda h: h.upload_content_to_bos(3, "a.txt", BUCKET), "data"),
    (lambda h: h.upload_file_to_bos("/no/such/file", "a.txt", BUCKET), "file_path"),
    (lambda h: h.get_metadata("", "a.txt"), "bucket"),
])
def test_bad_input_is_refused_before_sending(call: object, field: str) -> None:
    sent: list[httpx.Request] = []
    cfg = Config.from_env({}, access_key="k", secret_key="s")
    helper = BosHelper(config=cfg)
    with (patch("qfnb._core.http.client.AsyncQianfanClient.signed_request", side_effect=sent.append),
          pytest.raises(InvalidArgumentError) as info):
        call(helper)  # type: ignore[operator]
    assert info.value.field == field and isinstance(info.value, ValueError) and sent == []


def test_bos_paths() -> None:
    assert parse_bos_path("bos:/b/x/y.jsonl") == ("b", "/x/y.jsonl") == parse_bos_path("bos://b/x/y.jsonl")
    assert generate_bos_file_path("b", "/x/y") == "bos:/b/x/y"
    assert generate_bos_file_parent_path("b", "/x/y.jsonl") == "bos:/b/x"
    assert is_valid_bos_path("bos:/b/x/") and not is_valid_bos_path("s3://b/x") and not is_valid_bos_path("b/x")
    for bad, says in (("s3://b/x", "must start with 'bos:/'"), ("b/x", "must start"), ("bos:/", "names no bucket"),
                      ("bos://", "names no bucket")):
        with pytest.raises(InvalidArgumentError, match=says) as info:
            parse_bos_path(bad)
        assert info.value.field == "bos_path"


def test_region_picks_the_cloud_endpoint_only() -> None:
    cloud = Config.from_env({}, access_key="k", secret_key="s")
    assert BosHelper("gz", config=cloud).config.bos_endpoint == "https://gz.bcebos.com"
    assert BosHelper(config=cloud).config.bos_endpoint == cloud.bos_endpoint
    local = cloud.with_overrides(bos_endpoint="http://127.0.0.1:1/bos")
    assert BosHelper("gz", "ak2", "sk2", config=local).config.bos_endpoint == "http://127.0.0.1:1/bos"
    keyed = BosHelper("gz", "ak2", "sk2", config=local).config
    assert (keyed.access_key, keyed.secret_key) == ("ak2", "sk2")
    assert "sk2" not in repr(BosHelper("gz", "ak2", "sk2", config=local))


def test_dataset_upload_goes_through_the_helper(local_platform: ServedPlatform) -> None:
    cfg = local_platform.config()
    ds = Dataset.create_from_pyobj([{"prompt": "hi", "response": "yo"}])
    ds.save(qianfan_dataset_create_args={"name": "via_helper"}, config=cfg)
    assert Dataset.load(qianfan_dataset_id=ds.qianfan_dataset_id, config=cfg).list() == [
        {"prompt": "hi", "response": [["yo"]]}]
    with patch("qfnb.utils.bos_uploader.BosHelper.upload_content_to_bos", return_value=None) as put:
        other = Dataset.create_from_pyobj([{"prompt": "a", "response": "b"}])
        with pytest.raises(Exception, match="no object"):  # the patched put stored nothing to import
            other.save(qianfan_dataset_create_args={"name": "patched"}, config=cfg)
    (data, key, bucket), _ = put.call_args
    assert data == b'[{"prompt": "a", "response": [["b"]]}]\n' and key.endswith(".jsonl") and bucket


def test_cloud_upload_is_signed_through_the_helper(cloud: ConsoleCloud, cfg: Config) -> None:
    with patch("qfnb.utils.bos_uploader.BosHelper.upload_content_to_bos",
               autospec=True, side_effect=BosHelper.upload_content_to_bos) as put:
        Dataset.create_from_pyobj([{"prompt": "a", "response": "b"}]).save(
            qianfan_dataset_create_args={"name": "d"}, config=cfg)
    assert put.call_count == 1
    assert next(r.path for r in cloud.fake.requests if r.method == "PUT").startswith("/bos/fake-bucket/")


def test_a_data_source_save_stages_in_the_given_bucket_with_its_own_keys(local_platform: ServedPlatform) -> None:
    cfg = local_platform.config()
    source = QianfanDataSource.create_bare_dataset("staged", DataTemplateType.NonSortedConversation, config=cfg)
    rows = Dataset.create_from_pyobj([{"prompt": "p", "response": "r"}])
    with pytest.raises(InvalidArgumentError, match="sup_storage_id"):  # a staging bucket is given whole or not at all
        source.save(rows, sup_storage_id="staging")
    source.ak = "not-a-key"  # the source's own keys sign the upload: a wrong one is refused by BOS
    with pytest.raises(Exception, match=r"(?i)sign|auth|denied|credential"):
        source.save(rows, sup_storage_id="staging", sup_storage_path="/in/", sup_storage_region="bj")
    source.ak = None
    assert source.save(rows, sup_storage_id="staging", sup_storage_path="/in/", sup_storage_region="bj")
    staged = BosHelper(config=cfg).list_dir("staging", "in/")
    assert len(staged) == 1 and staged[0].key.startswith("in/data_") and staged[0].key.endswith(".jsonl")
    assert Dataset.load(qianfan_dataset_id=source.id, config=cfg).list() == [{"prompt": "p", "response": [["r"]]}]


def test_an_upload_without_iam_keys_is_refused_before_anything_is_sent(cloud: ConsoleCloud, cfg: Config) -> None:
    keyless = dataclasses.replace(cfg, access_key=None, secret_key=None)
    with pytest.raises(InvalidArgumentError, match="QIANFAN_ACCESS_KEY"):
        Dataset.create_from_pyobj([{"prompt": "a", "response": "b"}]).save(
            qianfan_dataset_create_args={"name": "d"}, config=keyless)
    assert cloud.fake.requests == []


def test_rows_are_saved_into_an_existing_local_dataset(local_platform: ServedPlatform) -> None:
    """The local GetDataset answers ``versionInfo.storage`` as the cloud does, so a save into a
    dataset made earlier finds its bucket (it had answered none: 'has no storage bucket')."""
    cfg = local_platform.config()
    source = QianfanDataSource.create_bare_dataset("existing", DataTemplateType.NonSortedConversation, config=cfg)
    assert source.save(Dataset.create_from_pyobj([{"prompt": "p", "response": "r"}]))
    Dataset.create_from_pyobj([{"prompt": "q", "response": "s"}]).save(qianfan_dataset_id=source.id, config=cfg)
    assert Dataset.load(qianfan_dataset_id=source.id, config=cfg).list() == [
        {"prompt": "p", "response": [["r"]]}, {"prompt": "q", "response": [["s"]]}]

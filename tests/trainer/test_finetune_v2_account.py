"""Fine-tuning on a 2026 (v2) account: IAM keys, no v1 app keys; the /v2/dataset and
/v2/finetuning calls only (the console double :mod:`tests.fakes.cloud_v2_console`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb.dataset import Dataset
from qfnb.resources.console.account import MissingConsoleKeysError
from qfnb.trainer import LLMFinetune, TrainConfig
from tests.fakes.cloud import FakeQianfan
from tests.fakes.cloud_v2_console import ConsoleV2, install_console_v2
from tests.fakes.console_fixtures import FAST

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]
UPLOAD = "bos:/my-bucket/qfnb/"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def console(fake: FakeQianfan) -> ConsoleV2:
    return install_console_v2(fake)


@pytest.fixture
def local_file(tmp_path: Path) -> Path:
    path = tmp_path / "local.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def _config(fake: FakeQianfan, **keys: Any) -> Config:
    return Config.from_env({}, base_url=fake.base_url, console_api_base_url=fake.base_url,
                           iam_base_url=fake.base_url, bos_endpoint=fake.base_url + "/bos",
                           bos_upload_path=UPLOAD, transport=fake.transport, **FAST, **keys)


def _trainer(cfg: Config, local_file: Path) -> LLMFinetune:
    return LLMFinetune(train_type="ERNIE-Speed-8K", dataset=Dataset.load(data_file=str(local_file)),
                       train_config=TrainConfig(epoch=1, learning_rate=3e-4), model_not_publish=True,
                       config=cfg)


def test_v2_account_fine_tunes_through_the_v2_calls(fake: FakeQianfan, console: ConsoleV2,
                                                     local_file: Path) -> None:
    cfg = _config(fake, access_key=fake.access_key, secret_key=fake.secret_key)
    assert cfg.api_version == 2
    trainer = _trainer(cfg, local_file).run(progress=False)
    seen = console.seen()
    assert not [p for p, _ in seen if p.startswith("/wenxinworkshop/")]
    put = [p for p, a in seen if p.startswith("/bos/")]
    assert len(put) == 1 and put[0].startswith("/bos/my-bucket/qfnb/")
    ds, ft = "/v2/dataset", "/v2/finetuning"
    assert [s for s in seen if not s[0].startswith("/bos/")] == [
        (ds, "CreateDataset"), (ds, "CreateImportTask"), (ds, "DescribeImportTask"), (ds, "DescribeImportTask"),
        (ds, "PublishDatasetVersion"), (ds, "DescribeDatasetVersion"), (ds, "DescribeDatasetVersion"),
        (ft, "CreateFineTuningJob"), (ft, "CreateFineTuningTask")] + [(ft, "DescribeFineTuningTask")] * 3
    assert [r.params.get("Action") for r in fake.requests].index(None) == 1  # the file is put after CreateDataset
    # the file on the user's BOS is what the import read; the run trains on the published version
    (version_id,) = console.versions
    assert console.versions[version_id]["publishStatus"] == "Published"
    assert console.versions[version_id]["rows"] == len(ROWS)
    task_body = next(r.json for r in fake.requests if r.params.get("Action") == "CreateFineTuningTask")
    assert task_body["datasetConfig"]["sourceType"] == "Platform"
    assert task_body["datasetConfig"]["versions"] == [{"versionId": version_id}]
    job_body = next(r.json for r in fake.requests if r.params.get("Action") == "CreateFineTuningJob")
    assert job_body["model"] == "ERNIE-Speed-8K" and job_body["trainMode"] == "SFT"
    # the documented output: the run's ids, its checkpoints and the platform's decision on them
    out = trainer.output
    assert out["job_id"] in console.jobs and out["task_id"] in console.tasks
    assert out["datasets"][0]["id"] == version_id
    assert out["best_checkpoint"] == 40 and [c["step"] for c in out["checkpoints"]] == [20, 40]
    assert trainer.status == "TrainFinished"


def test_api_key_alone_names_the_missing_iam_keys_and_sends_nothing(fake: FakeQianfan, console: ConsoleV2,
                                                                    local_file: Path) -> None:
    cfg = _config(fake, api_key="bce-v3/ALTAK-test/secret")
    assert cfg.api_version == 2
    with pytest.raises(MissingConsoleKeysError) as err:
        _trainer(cfg, local_file).run(progress=False)
    message = str(err.value)
    assert "QIANFAN_ACCESS_KEY" in message and "QIANFAN_SECRET_KEY" in message
    assert "secret" not in message.replace("SECRET_KEY", "").replace("secret key", "").replace("secret_key", "")
    assert fake.requests == [] and console.objects == {}


def test_no_upload_path_is_refused_before_anything_is_sent(fake: FakeQianfan, console: ConsoleV2,
                                                           local_file: Path) -> None:
    cfg = replace(_config(fake, access_key=fake.access_key, secret_key=fake.secret_key), bos_upload_path=None)
    with pytest.raises(ValidationError, match="QFNB_BOS_UPLOAD_PATH"):
        _trainer(cfg, local_file).run(progress=False)
    assert fake.requests == []

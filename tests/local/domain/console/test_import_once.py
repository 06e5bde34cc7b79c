"""A dataset import runs once per ``Idempotency-Key``: qfnb's client sends one key a call, the same when it
sends the call again (a retry, or after the daemon died under it, where the import may already be recorded).
A call sent again after its first try was recorded imports nothing more; one sent while its first try still
runs appends nothing when that one is recorded first; another key imports again, as it always did."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer, client_for, console

from qfnb.local.domain.console import dataset_tasks
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, Console, keyed_create, runs_once_per_key
from qfnb.resources.console import Data
from qfnb.resources.console.consts import DataSourceType
from tests.fakes.local_platform import served_platform

IMPORT = "/wenxinworkshop/dataset/import"


def _dataset(client: Any, key: str, rows: int) -> tuple[int, str]:
    data = "".join(json.dumps({"prompt": f"q{i}", "response": [[f"a{i}"]]}) + "\n" for i in range(rows)).encode()
    assert client.put(f"/bos/b/{key}.jsonl", content=data, auth=Signer()).status_code == 200
    ds = console(client, "/wenxinworkshop/dataset/create", {"name": key, "projectType": 20, "templateType": 2000,
                                                            "dataType": 4})["result"]
    return int(ds["id"]), f"bos:/b/{key}.jsonl"


def _count(client: Any, dataset_id: int) -> int:
    info = console(client, "/wenxinworkshop/dataset/info", {"datasetId": dataset_id})["result"]["versionInfo"]
    assert info["importStatus"] == 2, info
    return int(info["entityCount"])


def test_an_import_sent_again_under_its_key_is_imported_once(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        dataset_id, uri = _dataset(client, "once", 5)
        body = {"datasetId": dataset_id, "annotated": True, "importFrom": 1, "files": [uri]}
        for _ in range(3):  # the call, and the same call sent twice more
            sent = client.post(IMPORT, json=body, headers={IDEMPOTENCY_HEADER: "k-1"}, auth=Signer())
            assert sent.json()["result"] is True, sent.text
        assert _count(client, dataset_id) == 5
        assert client.post(IMPORT, json=body, headers={IDEMPOTENCY_HEADER: "k-2"}, auth=Signer()).json()["result"]
        assert client.post(IMPORT, json=body, auth=Signer()).json()["result"]  # no key: as before
        assert _count(client, dataset_id) == 15


def test_a_retry_beside_its_first_try_appends_nothing(tmp_path: Path) -> None:
    """The first try still runs (a client's timeout cut it, not the platform): the retry stages its rows,
    finds the key recorded when it takes the data file's lock, and cuts its append back."""
    with served_platform(tmp_path / "platform") as served:
        client = httpx.Client(base_url=served.url, timeout=120)
        dataset_id, uri = _dataset(client, "beside", 60_000)
        body = {"datasetId": dataset_id, "annotated": True, "importFrom": 1, "files": [uri]}
        answers: list[Any] = []

        def send() -> None:
            answers.append(client.post(IMPORT, json=body, headers={IDEMPOTENCY_HEADER: "k-beside"},
                                       auth=Signer()).json())

        calls = [threading.Thread(target=send) for _ in range(2)]
        for call in calls:
            call.start()
        for call in calls:
            call.join(120)
        assert [a["result"] for a in answers] == [True, True], answers
        assert _count(client, dataset_id) == 60_000
        stored = served.app.state.platform.settings.data_dir / "datasets"
        assert sum(len(p.read_text().splitlines()) for p in stored.rglob("data.jsonl")) == 60_000


def test_a_v2_import_sent_again_gets_its_first_task(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        rows = "".join(json.dumps({"prompt": f"p{i}", "response": [[f"r{i}"]]}) + "\n" for i in range(4)).encode()
        assert client.put("/bos/b/v2.jsonl", content=rows, auth=Signer()).status_code == 200
        version = console(client, "/v2/dataset", {"datasetName": "d2", "dataFormat": "PromptResponse"},
                          Action="CreateDataset")["result"]["versionId"]
        body = {"versionId": version, "files": ["bos:/b/v2.jsonl"]}

        def create(key: str) -> str:
            sent = client.post("/v2/dataset", params={"Action": "CreateImportTask"}, json=body,
                               headers={IDEMPOTENCY_HEADER: key}, auth=Signer())
            return str(sent.json()["result"])

        first = create("v2-k")
        assert create("v2-k") == first and create("v2-other") != first
        view = console(client, "/v2/dataset", {"versionId": version}, Action="DescribeDatasetVersion")["result"]
        assert view["entityCount"] == 8  # the first call and the other key's


@pytest.mark.parametrize(("path", "action", "keyed"), [(Console.DATASET_IMPORT, None, True),
                                                       (Console.V2_DATASET, "CreateImportTask", True),
                                                       (Console.V2_DATASET, "DescribeImportTask", False),
                                                       (Console.DATASET_INFO, None, False)])
def test_imports_are_sent_under_a_key_and_keep_their_own_mechanism(path: str, action: str | None,
                                                                    keyed: bool) -> None:
    assert runs_once_per_key(path, action) is keyed
    assert not keyed_create(path, action)  # an import's key is kept with its rows, not as a keyed create's


def test_qfnbs_client_sends_its_import_under_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's ``Data.create_data_import_task`` carries a key of its own (its tries reuse the call)."""
    keys: list[str | None] = []
    real = dataset_tasks.import_dataset

    def recorded(platform: Any, ds: Any, files: Any, key: str | None = None) -> Any:
        keys.append(key)
        return real(platform, ds, files, key)

    monkeypatch.setattr(dataset_tasks, "import_dataset", recorded)
    with served_platform(tmp_path / "platform") as served:
        client = httpx.Client(base_url=served.url, timeout=60)
        dataset_id, uri = _dataset(client, "sdk", 3)
        Data.create_data_import_task(dataset_id, True, DataSourceType.PrivateBos, uri, config=served.config())
        Data.create_data_import_task(dataset_id, True, DataSourceType.PrivateBos, uri, config=served.config())
        assert _count(client, dataset_id) == 6  # two calls, two imports
    assert len(keys) == 2 and all(k and k.startswith("qfnb-") for k in keys) and keys[0] != keys[1], keys

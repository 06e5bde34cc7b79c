"""A real daemon SIGKILLed after it committed a keyed fine-tune create, before its answer left; started again
on its data dir, the same call under the same ``Idempotency-Key`` gets the first try's answer, and the job
holds exactly one task (one training, paid once).

The daemon (``qfnb serve --daemon``, engine doubles, a temporary data dir, its own port on 127.0.0.1) is
started with a registry factory that kills it right after the keyed ``CreateFineTuningTask`` returned from
its transaction (:func:`platform_doubles.killed_after_a_keyed_fine_tune`); the restart runs without it.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer

from qfnb._core.backend import daemon
from qfnb._core.backend.discovery import LocalPlatform
from qfnb._core.backend.process import wait_gone
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, REUSED_HEADER, Console

FAKE_WORKER = Path(__file__).parents[1] / "fake_worker.py"
WORKER = ["--worker-command", f"{sys.executable} {FAKE_WORKER}"]
DOUBLES = ["--registry", "tests.local.platform_doubles:FakeRegistry", *WORKER]
KILLED_AFTER_COMMIT = ["--registry", "tests.local.platform_doubles:killed_after_a_keyed_fine_tune", *WORKER]
ROWS = [{"prompt": f"question {i}", "response": [[f"answer {i}"]]} for i in range(4)]


def _signed(platform: LocalPlatform) -> Signer:
    return Signer(platform.access_key, platform.iam_secret_key)


def _v2(platform: LocalPlatform, route: str, action: str, body: dict[str, Any],
        key: str | None = None) -> httpx.Response:
    return httpx.post(platform.base_url + route, params={"Action": action}, json=body, timeout=30,
                      headers={IDEMPOTENCY_HEADER: key} if key else {}, auth=_signed(platform))


def _runs(data_dir: Path) -> list[str]:
    """The runs (v2 tasks) the data dir's store holds, read while no daemon runs."""
    with sqlite3.connect(data_dir / "platform.sqlite3") as db:
        return [sid for (sid,) in db.execute("SELECT sid FROM runs ORDER BY id")]


def _job_with_data(platform: LocalPlatform) -> tuple[str, str]:
    """A v2 fine-tune job and an imported dataset (calls without a key)."""
    rows = "\n".join(json.dumps(r) for r in ROWS).encode()
    put = httpx.put(platform.base_url + "/bos/b/train.jsonl", content=rows, auth=_signed(platform), timeout=30)
    assert put.status_code == 200, put.text
    ds = _v2(platform, Console.V2_DATASET, "CreateDataset", {"datasetName": "d"}).json()["result"]["versionId"]
    imported = _v2(platform, Console.V2_DATASET, "CreateImportTask", {"versionId": ds, "files": ["bos:/b/train.jsonl"]})
    assert imported.status_code == 200, imported.text
    job = _v2(platform, Console.V2_FINETUNING, "CreateFineTuningJob", {"name": "j", "model": "Tiny-Chat"})
    return str(job.json()["result"]["jobId"]), str(ds)


def test_a_fine_tune_committed_when_the_daemon_died_is_created_once(daemon_data_dir: Path) -> None:
    data_dir = daemon_data_dir
    platform = daemon.ensure_daemon(data_dir, serve_args=KILLED_AFTER_COMMIT)
    job, ds = _job_with_data(platform)
    body = {"jobId": job, "datasetConfig": {"versions": [{"versionId": ds}]},
            "hyperParameterConfig": {"epoch": 1, "batchSize": 2}}

    with pytest.raises(httpx.HTTPError):  # the daemon dies under the call: no answer
        _v2(platform, Console.V2_FINETUNING, "CreateFineTuningTask", body, key="train-once")
    assert wait_gone(platform.pid, 10)
    committed = _runs(data_dir)
    assert len(committed) == 1  # the task was stored (with its key) before the kill

    daemon._known.pop(data_dir.resolve(), None)
    platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    again = _v2(platform, Console.V2_FINETUNING, "CreateFineTuningTask", body, key="train-once")
    assert again.status_code == 200, again.text
    assert again.json()["result"] == {"jobId": job, "taskId": committed[0]}
    assert again.headers[REUSED_HEADER] == "stored"
    tasks = _v2(platform, Console.V2_FINETUNING, "DescribeFineTuningTasks", {"jobId": job}).json()["result"]
    assert [t["taskId"] for t in tasks["taskList"]] == committed  # exactly one: trained (and paid) once

    other = _v2(platform, Console.V2_FINETUNING, "CreateFineTuningTask", body, key="another-run")
    assert other.json()["result"]["taskId"] != committed[0]  # another key is another run, as asked

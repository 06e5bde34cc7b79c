"""The four offline batch-inference calls: the official SDK against the platform, and qfnb's
``Data`` methods (sync and async) sending exactly what the official SDK sends."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import Recorder, ended, get_object, put_object, sdk_env, wait_task
from platform_doubles import FakeRegistry
from platform_helpers import make_settings

from qfnb._core.http import client as client_mod
from qfnb.local.server.app import create_app
from qfnb.resources import Data
from tests.fakes.cloud import serve
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"id": f"r{i}", "query": f"question {i}"} for i in range(6)]

OFFICIAL = """
import json, sys
from qianfan.resources import Data
inp, out = sys.argv[1], sys.argv[2]
made = Data.create_offline_batch_inference_task(name="bi", input_bos_uri=inp, output_bos_uri=out,
                                                endpoint="tiny-chat", inference_params={"temperature": 0.2},
                                                description="d", completion_window="24h")
tid = made["result"]["taskId"]
got = Data.get_offline_batch_inference_task(task_id=tid)["result"]
listed = Data.list_offline_batch_inference_task(max_keys=5, run_status=["Queuing", "Running", "Done"])["result"]
stopped = Data.stop_offline_batch_inference_task(task_id=tid)["result"]
print(json.dumps({"taskId": tid, "got": got, "listed": listed, "stopped": stopped}))
"""


@pytest.fixture()
def recorded(tmp_path: Path) -> Iterator[tuple[ServedPlatform, Recorder]]:
    app = create_app(make_settings(tmp_path / "data"), FakeRegistry())
    recorder = Recorder(app)
    with serve(recorder, lifespan="on") as url:
        client_mod._CLIENTS.clear()
        yield ServedPlatform(url, app, FakeRegistry()), recorder
        client_mod._CLIENTS.clear()


def _normal(calls: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Calls with task ids blanked (each run creates its own task)."""
    return [(a, r, {k: ("<id>" if k == "taskId" else v) for k, v in body.items()}) for a, r, body in calls]


def test_official_sdk_and_qfnb_send_the_same_four_calls(recorded: tuple[ServedPlatform, Recorder],
                                                        tmp_path: Path) -> None:
    if importlib.util.find_spec("qianfan") is None:
        pytest.skip("the official qianfan SDK is not installed")
    served, recorder = recorded
    inp = put_object(served.url, "in", "rows.jsonl", ROWS)
    proc = subprocess.run([sys.executable, "-c", OFFICIAL, inp, "bos:/out/official/"],
                          env=sdk_env(served.url, tmp_path), capture_output=True, text=True, timeout=180,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    official = json.loads(proc.stdout.strip().splitlines()[-1])
    assert official["got"]["taskId"] == official["taskId"] and official["got"]["name"] == "bi"
    assert official["got"]["runStatus"] in ("Queuing", "Running", "Done")
    assert official["taskId"] in [t["taskId"] for t in official["listed"]["taskList"]]
    assert official["stopped"] is True
    sdk_calls, recorder.calls[:] = list(recorder.calls), []

    cfg = served.config()
    made = Data.create_offline_batch_inference_task(name="bi", input_bos_uri=inp, output_bos_uri="bos:/out/official/",
                                                    endpoint="tiny-chat", inference_params={"temperature": 0.2},
                                                    description="d", completion_window="24h", config=cfg)
    tid = made["result"]["taskId"]
    assert Data.get_offline_batch_inference_task(task_id=tid, config=cfg)["result"]["taskId"] == tid
    Data.list_offline_batch_inference_task(max_keys=5, run_status=["Queuing", "Running", "Done"], config=cfg)
    assert Data.stop_offline_batch_inference_task(task_id=tid, config=cfg)["result"] is True
    assert _normal(recorder.calls) == _normal(sdk_calls)
    assert sdk_calls[0][1] == "infer"  # the Referer header of CreateBatchInferenceTask


def test_async_calls_and_the_answers(recorded: tuple[ServedPlatform, Recorder]) -> None:
    served, _ = recorded
    inp = put_object(served.url, "in", "rows.jsonl", ROWS)
    cfg = served.config()

    async def run() -> tuple[str, dict[str, Any]]:
        made = await Data.acreate_offline_batch_inference_task(name="a", input_bos_uri=inp, output_bos_uri="bos:/out/a",
                                                               endpoint="tiny-chat", config=cfg)
        tid = made["result"]["taskId"]
        listed = await Data.alist_offline_batch_inference_task(config=cfg)
        return tid, listed["result"]

    tid, listed = asyncio.run(run())
    assert tid in [t["taskId"] for t in listed["taskList"]]
    view = wait_task(served.url, tid, ended)
    assert view["runStatus"] == "Done" and view["succeededCount"] == 6 and view["failedCount"] == 0
    rows = get_object(served.url, view["outputFileUri"])
    assert sorted(r["custom_id"] for r in rows) == [f"r{i}" for i in range(6)]
    assert {r["response"]["body"]["choices"][0]["message"]["content"] for r in rows} == {
        f"tiny-chat: question {i}" for i in range(6)}


def test_bad_arguments_are_refused_before_sending() -> None:
    from qfnb._core.errors import ValidationError

    with pytest.raises(ValidationError, match="input_bos_uri"):
        Data.create_offline_batch_inference_task(name="x", endpoint="tiny-chat")
    with pytest.raises(ValidationError, match="completion_window"):
        Data.create_offline_batch_inference_task(name="x", input_bos_uri="bos:/a/b", output_bos_uri="bos:/a/c",
                                                 completion_window="1h")
    with pytest.raises(ValidationError, match="task_id"):
        Data.get_offline_batch_inference_task(task_id="")

"""A real daemon SIGKILLed in the middle of a dataset import, then started again on its data dir.

The import (``dataset/import`` of an uploaded jsonl file of :data:`ROWS` rows) runs on a real
``qfnb serve --daemon`` (engine doubles, a temporary data dir, its own port on 127.0.0.1); the kill
lands while the rows are staged (the part file is seen growing) or while they are appended (the
data file is seen growing). The dataset must come back whole: the rows imported before, none of the
killed import's (all of them, only where the append was recorded before the kill landed), no part
file, the import shown as failed (not running) with why; the same import, run again by qfnb's client
through a second kill (the client starts the daemon again and sends the call again), adds exactly the
file's rows.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer

from qfnb._core.backend import daemon
from qfnb._core.backend.discovery import LocalPlatform
from qfnb._core.backend.process import wait_gone
from qfnb.local.domain.state.datasets import APPEND_JOURNAL
from qfnb.protocol.console.enums import ImportStatus
from qfnb.protocol.wires.qianfan.routes import Console
from qfnb.resources.bos import BosHelper
from qfnb.resources.console import Data
from qfnb.resources.console.consts import DataSourceType

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")
DOUBLES = ["--registry", "tests.local.platform_doubles:FakeRegistry",
           "--worker-command", f"{sys.executable} {FAKE_WORKER}"]
#: rows of the big file (37 MB): its rows are staged for about 2 s (1.7 s on an idle core)
ROWS = 200_000
EARLIER = 3


@pytest.fixture
def data_dir(daemon_data_dir: Path) -> Path:
    return daemon_data_dir


def _jsonl(n: int, tag: str) -> bytes:
    return "".join(json.dumps({"prompt": f"{tag} question {i} " + "x" * 60, "response": [[f"answer {i} " + "y" * 60]]})
                   + "\n" for i in range(n)).encode()


def _upload(sid: str, name: str, body: bytes) -> str:
    """Put ``body`` into the dataset's storage as the SDK does (a signed BOS PUT); its ``bos:/`` URI."""
    key = f"datasets/{sid}/{name}"
    BosHelper().upload_content_to_bos(body, key, "qfnb-local")
    return f"bos:/qfnb-local/{key}"


def _info(dataset_id: int | str) -> dict[str, Any]:
    return dict(Data.get_dataset_info(dataset_id).body["result"]["versionInfo"])


def _stored(data_dir: Path, sid: str) -> list[dict[str, Any]]:
    """The dataset's rows on disk (each line must be whole JSON)."""
    with open(data_dir / "datasets" / sid / "data.jsonl", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _parts(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "datasets").glob("*/.data.jsonl.*.part"))


def _import_in_background(platform: LocalPlatform | None, dataset_id: int | str,
                          uri: str) -> tuple[threading.Thread, dict[str, Any]]:
    """``dataset/import`` of ``uri`` in a thread: sent once, signed, to ``platform`` (as curl would: no
    retry, no revival) or, with None, by qfnb's client (which revives a killed daemon and sends again)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            if platform is None:
                outcome["answer"] = Data.create_data_import_task(dataset_id, True, DataSourceType.PrivateBos,
                                                                 uri).body
            else:
                body = {"datasetId": dataset_id, "annotated": True, "importFrom": 1, "files": [uri]}
                outcome["answer"] = httpx.post(platform.base_url + Console.DATASET_IMPORT, json=body, timeout=60,
                                               auth=Signer(platform.access_key, platform.iam_secret_key)).json()
        except Exception as exc:  # the daemon died under the call
            outcome["error"] = exc

    caller = threading.Thread(target=run, name="import-call")
    caller.start()
    return caller, outcome


def _kill_when(check: Callable[[], bool], pid: int, what: str, started: float) -> float:
    """SIGKILL ``pid`` (the daemon's own process) as soon as ``check()``; seconds from ``started``."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"the import never reached {what}"
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    landed = time.monotonic() - started
    assert wait_gone(pid, 10)
    return landed


@pytest.mark.parametrize("phase", ["staging", "appending"])
def test_a_daemon_killed_mid_import_comes_back_with_the_dataset_whole(data_dir: Path, phase: str) -> None:
    platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    try:
        created = Data.create_bare_dataset("kill-set").parsed.result
        dataset_id, sid = created.id, str(created.storage_info["storagePath"]).strip("/").split("/")[-1]
        assert dataset_id is not None
        Data.create_data_import_task(dataset_id, True, DataSourceType.PrivateBos,
                                     _upload(sid, "earlier.jsonl", _jsonl(EARLIER, "earlier")))
        assert _info(dataset_id)["entityCount"] == EARLIER
        data = data_dir / "datasets" / sid / "data.jsonl"
        before = data.read_bytes()
        journal = data.with_name(APPEND_JOURNAL)
        big = _upload(sid, "big.jsonl", _jsonl(ROWS, "big"))

        # 1. killed mid-import under a caller that sends once: the platform's own recovery is seen
        started = time.monotonic()
        caller, outcome = _import_in_background(platform, dataset_id, big)
        if phase == "staging":  # well into the staging: the part file holds a few MB of rows
            landed = _kill_when(lambda: sum(p.stat().st_size for p in _parts(data_dir)) > 5_000_000,
                                platform.pid, "its staged rows", started)
        else:  # the rows are being appended to the data file
            landed = _kill_when(lambda: data.stat().st_size > len(before), platform.pid, "the append", started)
        journaled = journal.exists()  # the kill came before the append was recorded (it is undone)
        caller.join(60)
        at_kill = {"seconds": round(landed, 2), "data bytes": data.stat().st_size - len(before),
                   "parts": [p.stat().st_size for p in _parts(data_dir)], "journal": journaled}
        print(f"{phase}: killed at {at_kill}")

        daemon._known.pop(data_dir.resolve(), None)
        platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
        rows, info = _stored(data_dir, sid), _info(dataset_id)
        print(f"{phase}: after restart {len(rows)} rows, {info['entityCount']} counted, "
              f"status {info['importStatus']}, parts {_parts(data_dir)}")
        assert _parts(data_dir) == [] and not journal.exists()
        assert len(rows) == info["entityCount"]
        kept = len(rows) - EARLIER
        if phase == "staging" or journaled:  # none of its rows, and the import says why
            assert "error" in outcome, outcome
            assert data.read_bytes() == before and kept == 0
            assert info["importStatus"] == ImportStatus.FAILED, info
            assert "interrupted" in info["importErrorMessage"]
        else:  # on a fast machine the append may be recorded before the kill lands: then all of them
            assert kept == ROWS and info["importStatus"] == ImportStatus.FINISHED, info

        # 2. the same import again, by the user's client (its retries and revival), through a second kill
        started = time.monotonic()
        caller, outcome = _import_in_background(None, dataset_id, big)
        _kill_when(lambda: sum(p.stat().st_size for p in _parts(data_dir)) > 5_000_000, platform.pid,
                   "its staged rows", started)
        caller.join(60)
        assert outcome.get("answer", {}).get("result") is True, outcome  # revived, re-sent, done
        rows, info = _stored(data_dir, sid), _info(dataset_id)
        assert len(rows) == info["entityCount"] == EARLIER + kept + ROWS
        assert info["importStatus"] == ImportStatus.FINISHED and _parts(data_dir) == []
        assert [r["prompt"] for r in rows[:EARLIER]] == [f"earlier question {i} " + "x" * 60 for i in range(EARLIER)]
        assert rows[-1]["prompt"].startswith(f"big question {ROWS - 1} ")
        print(f"{phase}: imported again in {time.monotonic() - started:.1f} s through a second kill: {len(rows)} rows")
    finally:
        daemon.stop_daemon(data_dir, force=True, timeout=30)


def test_a_daemon_killed_mid_upload_leaves_no_part_file_after_a_restart(data_dir: Path) -> None:
    """An object upload is written aside and renamed into place when whole: a daemon killed while a PUT
    streams in left its part file in the objects folder for good. The next start removes it; the object
    was never there, and the same upload then goes in whole."""
    platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    try:
        killed = threading.Event()

        def body() -> Iterator[bytes]:
            yield b"x" * (3 * 1024 * 1024)  # past the batch the platform writes at once
            killed.wait(30)  # the rest never comes: the daemon dies first
            yield b"y"

        url = f"{platform.base_url}/bos/qfnb-local/uploads/cut.jsonl"
        outcome: dict[str, Any] = {}

        def put() -> None:
            try:
                outcome["status"] = httpx.put(url, content=body(), timeout=60,
                                              auth=Signer(platform.access_key, platform.iam_secret_key)).status_code
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        caller = threading.Thread(target=put, name="upload-call")
        caller.start()

        def parts() -> list[Path]:
            return sorted((data_dir / "objects").rglob(".*.part"))

        _kill_when(lambda: any(p.stat().st_size > 0 for p in parts()), platform.pid, "its part file", time.monotonic())
        killed.set()
        caller.join(30)
        assert "error" in outcome and len(parts()) == 1, (outcome, parts())

        daemon._known.pop(data_dir.resolve(), None)
        platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
        assert parts() == [] and not (data_dir / "objects" / "qfnb-local" / "uploads" / "cut.jsonl").exists()
        auth = Signer(platform.access_key, platform.iam_secret_key)
        assert httpx.put(url, content=b"whole\n", auth=auth, timeout=30).status_code == 200
        assert httpx.get(url, auth=auth, timeout=30).content == b"whole\n"
    finally:
        daemon.stop_daemon(data_dir, force=True, timeout=30)

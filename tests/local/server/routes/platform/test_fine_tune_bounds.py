"""Issue 92 §1: every door a fine-tuning line comes through parses it under bounds. An upload (OpenAI's
files route) or a dataset import (the console) of a line nested 100,000 deep, a line past the length limit or
a line cut short is a 400 naming the line and the limit, and nothing is kept; the daemon's memory for a long
line stays a small multiple of the limit, not of the line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from platform_helpers import Signer, bearer, console
from starlette.testclient import TestClient

from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
from qfnb.protocol import bounded_jsonl
from qfnb.protocol.wires.qianfan import batch
from qfnb.protocol.wires.qianfan.routes import Console

CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
DEEP = "[" * 100_000 + "]" * 100_000
LONG = json.dumps({"messages": [{"role": "user", "content": "x" * (bounded_jsonl.MAX_LINE_BYTES + 10)},
                                {"role": "assistant", "content": "y"}]})
CUT = CHAT[:38]  # cut inside a string, as a truncated upload is

CASES = [(DEEP, "line 2: nests deeper than 64 levels"),
         (LONG, f"line 2: is longer than {bounded_jsonl.MAX_LINE_BYTES} bytes"),
         (CUT, "line 2: is not valid JSON (Unterminated string starting at column ")]
IDS = ["deep", "long", "cut"]


def _upload(client: TestClient, data: bytes) -> Any:
    return client.post(batch.FILES, data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", data)},
                       headers={"Authorization": f"Bearer {bearer(client)}"})


@pytest.mark.parametrize(("line", "says"), CASES, ids=IDS)
def test_an_upload_past_a_bound_is_a_400_naming_the_line_and_nothing_is_kept(client: TestClient, line: str,
                                                                              says: str) -> None:
    resp = _upload(client, (CHAT + "\n" + line + "\n").encode())
    assert resp.status_code == 400, resp.text[:300]
    error = resp.json()["error"]
    assert error["param"] == "file" and says in error["message"], error
    assert "at at" not in error["message"]
    assert client.app.state.platform.store.all("files") == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("line", "says"), CASES, ids=IDS)
def test_a_dataset_import_past_a_bound_is_refused_naming_the_line(client: TestClient, line: str, says: str) -> None:
    put = client.put("/bos/b/train.jsonl", content=(json.dumps({"prompt": "q", "response": [["a"]]}) + "\n"
                                                     + line + "\n").encode(), auth=Signer())
    assert put.status_code == 200
    ds = console(client, Console.DATASET_CREATE, {"name": "qa"})["result"]
    answer = console(client, Console.DATASET_IMPORT, {"datasetId": ds["id"], "files": ["bos:/b/train.jsonl"]})
    text = json.dumps(answer)
    assert answer.get("error_code") and "train.jsonl line 2" in text, text[:300]
    assert says.removeprefix("line 2: ").split(" (")[0] in text, text[:300]


def test_checking_a_file_of_a_long_line_holds_a_small_multiple_of_the_limit(tmp_path: Path) -> None:
    """A 24 MiB line (it cost ~25x its size parsed whole): refused, the check's peak a few line limits."""
    path = tmp_path / "long.jsonl"
    path.write_bytes(CHAT.encode() + b"\n" + b'{"messages": "' + b"a" * (24 << 20) + b'"}\n')
    tracemalloc.start()
    try:
        with pytest.raises(BodyError, match="line 2: is longer than"):
            fine_tuning.check_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * bounded_jsonl.MAX_LINE_BYTES, peak


#: run in a process of its own: other tests' apps leave threads whose allocations would count in the measure
MEASURE_CREATE = """
import json, sys, tracemalloc
from pathlib import Path
from platform_helpers import bearer, client_for
from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
from qfnb.protocol.wires.qianfan import batch

client = client_for(Path(sys.argv[1]))  # not started: the routes answer all the same, no background threads
platform = client.app.state.platform

def chat_file(lines):
    data = "".join(json.dumps({"messages": [{"role": "user", "content": f"question {i} " + "q" * 60},
        {"role": "assistant", "content": f"answer {i} " + "a" * 60}]}) + "\\n" for i in range(lines)).encode()
    resp = client.post(batch.FILES, data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", data)},
                       headers={"Authorization": f"Bearer {bearer(client)}"})
    return resp.json()["id"], resp.json()["bytes"]

fine_tuning.create_job(platform, {"model": "tiny-chat", "training_file": chat_file(1)[0]})  # its imports
file_id, size = chat_file(10_000)
tracemalloc.start()
job = fine_tuning.create_job(platform, {"model": "tiny-chat", "training_file": file_id})
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
run = platform.store.get("runs", "task-" + job["id"].removeprefix("ftjob-"))
print(json.dumps({"rows": run["rows"], "peak": peak, "size": size}))
"""


def test_a_job_create_converts_and_writes_its_file_a_line_at_a_time(tmp_path: Path) -> None:
    """A 10,000-line chat file (~2 MiB): the create's peak is a small part of the file (it held every row, the
    converted rows and their text at once before)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[3]),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", MEASURE_CREATE, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["rows"] == 10_000
    assert found["peak"] < found["size"] / 8, found

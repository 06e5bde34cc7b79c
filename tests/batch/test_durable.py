"""A batch job belongs to the daemon: it survives its caller's process-group kill and a daemon
SIGKILL mid-job, and every row is answered exactly once in the output."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from batch_helpers import console, ended, get_object, put_object, wait_task
from platform_helpers import Signer

from qfnb._core.backend import daemon

REPO = Path(__file__).resolve().parents[2]
SERVE = ["--registry", "tests.batch.batch_doubles:PacedRegistry"]
ROWS = 60

CALLER = """
import sys, time
from qfnb.resources import Data
made = Data.create_offline_batch_inference_task(name="durable", input_bos_uri=sys.argv[1],
                                                output_bos_uri="bos:/out/durable/", endpoint="tiny-chat")
print(made["result"]["taskId"], flush=True)
time.sleep(600)
"""


@pytest.fixture
def data_dir(daemon_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QFNB_TEST_REQUEST_LOG", str(tmp_path / "requests.log"))
    monkeypatch.setenv("QFNB_TEST_DELAY", "0.04")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(REPO / "tests" / "local")]))
    return daemon_data_dir


def test_job_survives_its_callers_group_kill_and_a_daemon_sigkill(data_dir: Path, tmp_path: Path) -> None:
    first = daemon.ensure_daemon(data_dir, serve_args=SERVE)
    auth = Signer(first.access_key, first.iam_secret_key)
    rows = [{"id": f"row-{i}", "query": f"q{i} tell me"} for i in range(ROWS)]
    uri = put_object(first.base_url, "in", "durable.jsonl", rows, auth)
    caller = subprocess.Popen([sys.executable, "-c", CALLER, uri], stdout=subprocess.PIPE, text=True,
                              cwd=str(tmp_path), start_new_session=True, env=os.environ.copy())
    try:
        assert caller.stdout is not None
        task_id = caller.stdout.readline().strip()
        assert task_id.startswith("infer-")
    finally:
        os.killpg(caller.pid, signal.SIGKILL)  # the kernel that submitted it goes away, with its group
        caller.wait()
    # the job goes on without its caller
    wait_task(first.base_url, task_id, lambda v: v["succeededCount"] >= 12, auth=auth)
    os.kill(first.pid, signal.SIGKILL)  # the daemon dies mid-job, rows in flight
    deadline = time.monotonic() + 10
    while daemon._pid_alive(first.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon._known.clear()
    second = daemon.ensure_daemon(data_dir, serve_args=SERVE)
    assert second.pid != first.pid
    view = wait_task(second.base_url, task_id, ended, limit=120, auth=auth)
    assert view["runStatus"] == "Done", view
    assert (view["succeededCount"], view["failedCount"], view["totalCount"]) == (ROWS, 0, ROWS)
    out = get_object(second.base_url, view["outputFileUri"], auth)
    keys = collections.Counter(r["custom_id"] for r in out)
    assert keys == collections.Counter(f"row-{i}" for i in range(ROWS))  # every row exactly once
    for r in out:
        n = r["custom_id"].split("-")[1]
        assert r["response"]["body"]["choices"][0]["message"]["content"] == f"tiny-chat: q{n} tell me"
    assert get_object(second.base_url, view["errorFileUri"], auth) == []
    # the requests the engine saw: each row once, except those in flight at the kill (at most once more)
    sent = collections.Counter((tmp_path / "requests.log").read_text().split("\n")[:-1])
    repeated = sorted(k for k, n in sent.items() if n > 1)
    assert set(sent.values()) <= {1, 2} and len(sent) == ROWS
    assert view["repeatedRequests"] == len(repeated), (view["repeatedRequests"], repeated)
    assert 1 <= len(repeated) <= 4  # at most the engine's slots were in flight
    print(f"repeated requests after the daemon SIGKILL: {len(repeated)} of {ROWS} rows")
    # what the kill lost was paid: each repeated row's prompt once more (exact: the engine's words),
    # its lost answer at the row's cap (the default 1024 tokens: an estimate), in the job's usage
    answered_in = sum(r["response"]["body"]["usage"]["prompt_tokens"] for r in out)
    answered_out = sum(r["response"]["body"]["usage"]["completion_tokens"] for r in out)
    repeat_in = sum(len(k.split()) for k in repeated)
    assert (view["repeatedInputTokens"], view["repeatedOutputTokensEstimated"]) == (repeat_in, 1024 * len(repeated))
    assert view["inputTokenUsage"] == answered_in + repeat_in
    assert view["outputTokenUsage"] == answered_out + 1024 * len(repeated)
    # /metrics of the new daemon counts the whole job, the rows answered before the kill included
    scraped = httpx.get(second.base_url + "/metrics").text  # a loopback scrape needs no key
    def counter(name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                   if line.startswith(name + "{") and 'route="batch"' in line)
    assert counter("qfnb_requests_total") == ROWS + len(repeated)
    assert counter("qfnb_prompt_tokens_total") == view["inputTokenUsage"]
    assert counter("qfnb_completion_tokens_total") == view["outputTokenUsage"]
    listed = console(second.base_url, "DescribeBatchInferenceTasks", {"runStatus": ["Done"]}, auth)
    assert task_id in [t["taskId"] for t in listed["taskList"]]

"""Acceptance: the official ``qianfan`` SDK (0.4.12.3), pointed at the local platform, runs the seed calls."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_doubles import FakeRegistry
from platform_helpers import CREDS, Signer, make_settings

from qfnb.local.server.app import create_app
from tests.fakes.cloud import serve

# find, don't import: importing qianfan installs a fake pyarrow import hook into this process
if importlib.util.find_spec("qianfan") is None:
    pytest.skip("the official qianfan SDK is not installed", allow_module_level=True)
SCRIPT = Path(__file__).with_name("sdk_seed_script.py")
REPO = Path(__file__).resolve().parents[2]


def sdk_env(base: str, tmp: Path, ak: str, sk: str, access: str, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    env.update(QIANFAN_BASE_URL=base, QIANFAN_CONSOLE_API_BASE_URL=base, QIANFAN_IAM_BASE_URL=base,
               QIANFAN_AK=ak, QIANFAN_SK=sk, QIANFAN_ACCESS_KEY=access, QIANFAN_SECRET_KEY=secret,
               QIANFAN_CACHE_DIR=str(tmp / "qianfan-cache"), HOME=str(tmp))
    return env


def run_sdk(env: dict[str, str], *args: str, timeout: float = 240) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(env["HOME"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture()
def fast_server(tmp_path: Path):
    app = create_app(make_settings(tmp_path / "data"), FakeRegistry())
    with serve(app, lifespan="on") as url:
        yield app, url


def test_official_sdk_seed_calls_fast(fast_server, tmp_path: Path) -> None:
    _, base = fast_server
    rows = "\n".join(json.dumps({"prompt": f"q{i}", "response": [[f"a{i}"]]}) for i in range(6))
    # upload a dataset file the way a client does (Contract 6)
    assert httpx.put(base + "/bos/b/train.jsonl", content=rows.encode(), auth=Signer()).status_code == 200
    out_ds: dict[str, Any] = {}
    env = sdk_env(base, tmp_path, CREDS.api_key, CREDS.secret_key, CREDS.access_key, CREDS.iam_secret_key)
    code = ("from qianfan.resources import Data; from qianfan.resources.console.consts import *; import json;"
            "d = Data.create_bare_dataset('qa', DataSetType.TextOnly, DataProjectType.Conversation,"
            " DataTemplateType.NonSortedConversation)['result'];"
            "Data.create_data_import_task(d['id'], True, DataSourceType.PrivateBos, 'bos:/b/train.jsonl');"
            "print(json.dumps([d['id'], Data.get_dataset_info(d['id'])['result']['versionInfo']['entityCount']]))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    ds_id, count = json.loads(proc.stdout.strip().splitlines()[-1])
    assert count == 6
    out = run_sdk(env, "fast", str(ds_id))
    out_ds.update(out)
    question = "What is the capital of France? Answer in one short sentence."
    assert out["chat"] == f"tiny-chat: {question}"
    assert out["chat_usage"]["completion_tokens"] > 0
    assert "".join(out["chat_stream"]) == out["chat"] and len(out["chat_stream"]) > 1
    assert out["messages"] == "tiny-chat: hello" and out["endpoint_chat"] == "tiny-chat: hi"
    assert "".join(out["chat_astream"]) == "tiny-chat: async hi"
    assert out["bad_messages"][1] == 336006
    assert out["v2_chat"] == out["v2_stream"] == "tiny-chat: v2 hi"
    assert out["completion"] == "tiny-chat: The capital of France is"
    assert out["embedding_dims"] == [3, 3]
    # trainsetRate 20 holds 1 of the 6 rows out for the evaluation loss: 5 train, 2 steps of 2
    assert out["job"] == {"trainStatus": "FINISH", "progress": 100, "currentStep": 2, "totalSteps": 2}
    assert out["stop"] is True
    assert out["model_list"] == out["model_detail"] == "sdk_test_1"
    assert out["service"][1] == "Serving"
    assert out["service_chat"] == "adapter svc_uri: 你好"


def test_official_sdk_rejects_wrong_secret(fast_server, tmp_path: Path) -> None:
    _, base = fast_server
    env = sdk_env(base, tmp_path, CREDS.api_key, "wrong", CREDS.access_key, "wrong")
    code = ("import qianfan\ntry:\n    qianfan.ChatCompletion().do(endpoint='tiny-chat', messages=[{'role':'user',"
            "'content':'x'}])\nexcept Exception as e:\n    print(type(e).__name__, e)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path))
    assert "AuthError" in proc.stdout or "invalid_client" in proc.stdout, proc.stdout + proc.stderr[-1500:]


@pytest.mark.real_model
def test_official_sdk_against_qfnb_serve_real_models(tmp_path: Path) -> None:
    from qfnb.local.engines.llama.process.command import find_binary

    if find_binary() is None:
        pytest.skip("llama-server is not built (scripts/bootstrap.sh)")
    env = dict(os.environ, QFNB_DATA_DIR=str(tmp_path / "data"))
    env.pop("QIANFAN_AK", None)
    server = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "serve", "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(REPO))
    try:
        assert server.stdout is not None
        base = ""
        for line in server.stdout:  # the server binds a free port once and prints it
            found = re.search(r"QIANFAN_BASE_URL=(http://127\.0\.0\.1:\d+)", line)
            if found:
                base = found.group(1)
                break
        assert base, "qfnb serve printed no URL"
        creds = json.loads((tmp_path / "data" / "credentials.json").read_text())
        assert (tmp_path / "data" / "credentials.json").stat().st_mode & 0o777 == 0o600
        out = run_sdk(sdk_env(base, tmp_path, creds["api_key"], creds["secret_key"], creds["access_key"],
                              creds["iam_secret_key"]), "real", timeout=500)
        assert "Paris" in out["chat"]
        assert "".join(out["chat_stream"]).strip() and "Paris" in "".join(out["chat_stream"])
        assert out["embedding_dims"] == [384, 384]
    finally:
        server.terminate()
        server.wait(30)

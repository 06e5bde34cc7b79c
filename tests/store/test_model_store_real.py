"""Real models (``real_model``): the built-in Qwen GGUF added under a new name and a two-layer GGUF of
Qwen's shape written by ``bench/shaped_gguf.py``, served by ``llama-server`` through the daemon, seen
by the official SDK, their true RSS shown by ``ps`` and freed by ``unload``."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import qfnb.local_models as lm
from qfnb._core.backend.daemon import daemon_status
from qfnb.local.engines.store import assets
from qfnb.local.engines.store.byom import rss_bytes
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL

pytestmark = [pytest.mark.real_model, pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("qianfan") is None,
                                                         reason="the official qianfan SDK is not installed")]
log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
SDK = """
import json, qianfan
out = {"models": sorted(qianfan.ChatCompletion().models())}
out["chat"] = qianfan.ChatCompletion(model="my-qwen").do(
    messages=[{"role": "user", "content": "What is 2 + 3? Answer with the number only."}],
    temperature=0.01, max_output_tokens=8)["result"]
out["shaped"] = qianfan.Completion(model="shaped-2layer").do(prompt="hello", max_output_tokens=4)["result"]
print(json.dumps(out))
"""


def _sdk(data_dir: Path, tmp: Path) -> dict[str, object]:
    info = json.loads((data_dir / "runtime.json").read_text())
    creds = json.loads((data_dir / "credentials.json").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    env.update(QIANFAN_BASE_URL=info["url"], QIANFAN_CONSOLE_API_BASE_URL=info["url"],
               QIANFAN_IAM_BASE_URL=info["url"], QIANFAN_AK=creds["api_key"], QIANFAN_SK=creds["secret_key"],
               QIANFAN_ACCESS_KEY=creds["access_key"], QIANFAN_SECRET_KEY=creds["iam_secret_key"],
               QIANFAN_CACHE_DIR=str(tmp / "qianfan-cache"), HOME=str(tmp))
    proc = subprocess.run([sys.executable, "-c", SDK], env=env, capture_output=True, text=True, timeout=300,
                          cwd=str(tmp))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_added_ggufs_are_served_listed_measured_and_unloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    qwen = assets.gguf_path(LOCAL_CHAT_MODEL)  # the built-in chat model's file, in the machine's store
    sys.path.insert(0, str(REPO / "bench"))
    from shaped_gguf import write

    shaped = tmp_path / "qwen-shape-2layer.gguf"
    write(str(qwen), str(shaped), "2layer")
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("QFNB_ENGINE_SLOTS", "2")
    data = tmp_path / "data"

    mine = lm.add(qwen, name="my-qwen", keep_alive=-1, data_dir=data)
    assert mine["kind"] == "gguf" and mine["arch"] == "qwen2" and mine["has_template"]
    assert os.stat(mine["path"]).st_ino == os.stat(qwen).st_ino  # hard-linked, not a second copy
    other = lm.add(shaped, name="shaped-2layer", ctx=512, data_dir=data)
    assert {m["name"] for m in lm.list(data)} == {"my-qwen", "shaped-2layer"} and other["size"] > 10 * 2**20

    out = _sdk(data, tmp_path)
    assert {"my-qwen", "shaped-2layer"} <= set(out["models"])  # type: ignore[arg-type]
    assert "5" in str(out["chat"])
    assert isinstance(out["shaped"], str)

    running = {r["model"]: r for r in lm.ps(data)}
    assert running["my-qwen"]["state"] == "ready" and running["my-qwen"]["unloadIn"] is None  # keep_alive -1
    qwen_pid, qwen_rss = running["my-qwen"]["pid"], running["my-qwen"]["rssBytes"]
    assert qwen_rss == rss_bytes(qwen_pid) or abs(qwen_rss - rss_bytes(qwen_pid)) < 64 * 2**20
    assert qwen_rss > 200 * 2**20 and running["shaped-2layer"]["rssBytes"] > 50 * 2**20
    assert running["shaped-2layer"]["unloadIn"] is not None
    status = daemon_status(data)
    assert status is not None and status.child_memory_bytes >= qwen_rss + running["shaped-2layer"]["rssBytes"]

    assert lm.unload("my-qwen", data) == {"model": "my-qwen", "unloaded": True}
    for _ in range(100):
        if rss_bytes(qwen_pid) == 0:
            break
        time.sleep(0.1)
    assert rss_bytes(qwen_pid) == 0
    after = {r["model"]: r for r in lm.ps(data)}
    assert after["my-qwen"]["state"] == "stopped" and after["my-qwen"]["rssBytes"] == 0
    status_after = daemon_status(data)
    assert status_after is not None and status_after.child_memory_bytes <= status.child_memory_bytes - qwen_rss // 2
    log.info("RSS my-qwen before unload %.0f MiB, after 0 MiB; shaped-2layer %.0f MiB; engines+workers "
             "%.0f -> %.0f MiB", qwen_rss / 2**20, running["shaped-2layer"]["rssBytes"] / 2**20,
             status.child_memory_bytes / 2**20, status_after.child_memory_bytes / 2**20)
    shaped.unlink()  # the store's link is now the only one: rm would free the file
    usage = lm.du(data)
    freed = {m["name"]: m["freed_by_rm"] for m in usage["models"]}
    assert freed == {"my-qwen": 0, "shaped-2layer": other["size"]}  # the Qwen file is linked from the built-in store

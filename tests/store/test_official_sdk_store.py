"""The official ``qianfan`` SDK sees added models: its model list names them, and its Text2Image draws
through an added image engine (no model is loaded: the GGUF is only listed)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store.model_store import ModelStore
from qfnb.local.server.app import create_app
from qfnb.local.settings import Settings
from tests.fakes.cloud import serve
from tests.store.test_image_engine import CREDS, image_engine  # noqa: F401 - a fixture
from tests.store.test_model_store import tiny_gguf

if importlib.util.find_spec("qianfan") is None:
    pytest.skip("the official qianfan SDK is not installed", allow_module_level=True)

SCRIPT = """
import base64, json, struct, qianfan
out = {"chat_models": sorted(qianfan.ChatCompletion().models()),
       "completion_models": sorted(qianfan.Completion().models())}
img = qianfan.Text2Image(model="my-sd").do(prompt="a red square", size="24x16")
raw = base64.b64decode(img["body"]["data"][0]["b64_image"])
out["image"] = [raw[:4].hex(), *struct.unpack(">II", raw[16:24])]
print(json.dumps(out))
"""


def test_the_official_sdk_lists_added_models_and_draws_through_an_added_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_engine: Any) -> None:  # noqa: F811
    url, seen = image_engine
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    settings = Settings(data_dir=tmp_path / "data", credentials=CREDS, worker_command=(sys.executable, "-c", "0"))
    app = create_app(settings, EngineRegistry(settings.data_dir, options=EngineOptions(slots=2)))
    store = ModelStore()
    store.add(tiny_gguf(tmp_path / "m.gguf"), "byo-chat")
    store.add(None, "my-sd", roles=("text2image",), engine_url=url)
    with serve(app, lifespan="on") as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
        env.update(QIANFAN_BASE_URL=base, QIANFAN_CONSOLE_API_BASE_URL=base, QIANFAN_IAM_BASE_URL=base,
                   QIANFAN_AK=CREDS.api_key, QIANFAN_SK=CREDS.secret_key, QIANFAN_ACCESS_KEY=CREDS.access_key,
                   QIANFAN_SECRET_KEY=CREDS.iam_secret_key, QIANFAN_CACHE_DIR=str(tmp_path / "qf-cache"),
                   HOME=str(tmp_path))
        proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240,
                              cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "byo-chat" in out["chat_models"] and "byo-chat" in out["completion_models"]
    assert out["image"] == [b"\x89PNG".hex(), 24, 16]
    assert seen and seen[-1]["model"] == "my-sd"

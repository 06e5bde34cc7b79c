"""A Hugging Face causal-LM dir added to the store is converted once to GGUF and served by ``llama-server``
(``real_model``): the dir is the built-in Qwen's trainable bf16 form, added under a new name.

Its GGUF tokenizes exactly as the original GGUF does (checked on two bare ``llama-server``s started
here), and the platform answers with it through llama.cpp.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
from platform_helpers import spawn_reporting, wait_up

import qfnb.local_models as lm
from qfnb._core.backend.daemon import stop_daemon
from qfnb.local.engines.llama.process.command import find_binary, reported_port
from qfnb.local.engines.store import assets
from qfnb.local.engines.store.model_store import SERVED_GGUF
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL
from qfnb.resources import ChatCompletion

pytestmark = [pytest.mark.real_model, pytest.mark.slow]
log = logging.getLogger(__name__)
TEXT = "<|im_start|>user\nHello, 世界! def f(x): return x**2 <|im_end|>\n"


def tokens(gguf: Path, tmp: Path) -> list[int]:
    binary = find_binary()
    assert binary is not None
    logfile = tmp / f"{gguf.stem}.log"
    proc, port = spawn_reporting([str(binary), "--model", str(gguf), "--host", "127.0.0.1", "--port", "0",
                                  "--ctx-size", "256", "--threads", "2", "--no-webui"], logfile, reported_port)
    try:
        wait_up(f"http://127.0.0.1:{port}/health", proc, log=logfile)
        resp = httpx.post(f"http://127.0.0.1:{port}/tokenize", json={"content": TEXT, "parse_special": True},
                          timeout=60)
        return [int(t) for t in resp.json()["tokens"]]
    finally:
        proc.terminate()
        proc.wait(20)


def test_an_hf_dir_is_served_by_llama_server_after_conversion(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    original = assets.gguf_path(LOCAL_CHAT_MODEL)
    hf_dir = assets.hf_dir(LOCAL_CHAT_MODEL)  # converted once per machine (the fine-tune form)
    # a daemon of its own (a temporary store and data dir), stopped at the end
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))
    try:
        started = time.monotonic()
        entry = lm.add(hf_dir, name="qwen-from-hf", role=["chat", "finetune-base"])
        took = time.monotonic() - started
        served = Path(entry["path"]) / SERVED_GGUF
        assert entry["kind"] == "hf-causal-lm" and served.is_file()
        assert tokens(served, tmp_path) == tokens(original, tmp_path)
        answer = ChatCompletion(model="qwen-from-hf").do(
            messages=[{"role": "user", "content": "What is the capital of France? One word."}],
            temperature=1e-6, max_output_tokens=8)["result"]
        log.info("added and converted in %.0f s; answers %r", took, answer)
        assert "Paris" in answer
        engines = [r for r in lm.ps() if r["model"] == "qwen-from-hf"]
        assert engines and engines[0]["pid"] and engines[0]["rssBytes"] > 0  # a llama-server, not transformers
    finally:
        stop_daemon(tmp_path / "data", force=True)

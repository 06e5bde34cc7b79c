"""The real llama-server (built with ``scripts/llama_server_lora_load.patch``) loads a LoRA adapter
into its running process: no second process, the base model's answers unchanged, and the adapter's
greedy answer the same as from a process given the adapter at start (marked ``real_model`` and ``slow``:
6 min at load 15 on 2 cores; ``tests/local/test_engine_ports.py`` covers the same path with a double)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qfnb.local.engines import GEMMA
from qfnb.local.engines.adapters.lora_gguf import convert_adapter
from qfnb.local.engines.llama.process.server import EngineUnavailable, Lease, LlamaServer, ServerConfig, find_binary
from qfnb.local.engines.store import assets

pytestmark = [pytest.mark.real_model, pytest.mark.slow,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
PROMPT = "Question: What does a lighthouse keeper do?\nAnswer:"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA GGUF of Gemma-3-270M with random weights (what it learnt does not matter here)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("lora")
    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(str(assets.hf_dir(GEMMA)), dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=32, init_lora_weights=False, target_modules=["q_proj", "v_proj", "down_proj"])
    get_peft_model(model, config).save_pretrained(str(out))
    return convert_adapter(out, out / "adapter.gguf", base_gguf=assets.gguf_path(GEMMA))


@pytest.fixture()
def engines(tmp_path: Path) -> Iterator[list[LlamaServer]]:
    made: list[LlamaServer] = []
    yield made
    for engine in made:
        engine.close()


def _engine(engines: list[LlamaServer], tmp_path: Path, name: str) -> LlamaServer:
    config = ServerConfig(name=name, gguf=assets.gguf_path(GEMMA), log_dir=tmp_path / "logs", slots=2,
                          idle_seconds=600)
    engines.append(LlamaServer(config))
    return engines[-1]


def _complete(engine: LlamaServer, adapter: Path | None) -> tuple[str, Lease]:
    lease = engine.acquire(adapter)
    try:
        body = {"prompt": PROMPT, "n_predict": 16, "temperature": 0.0, "cache_prompt": False,
                "lora": lease.lora(adapter)}
        reply = httpx.post(f"{lease.url}/completion", headers={"Authorization": f"Bearer {lease.key}"}, json=body,
                           timeout=120)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["content"]), lease
    finally:
        engine.release(lease)


def test_an_adapter_registered_after_the_start_is_loaded_into_the_running_process(
        adapter: Path, engines: list[LlamaServer], tmp_path: Path) -> None:
    running = _engine(engines, tmp_path, "running")
    base_before, first = _complete(running, None)  # the engine serves the base model alone
    running.add_adapters([adapter])  # a deploy
    tuned, lease = _complete(running, adapter)
    assert lease.instance is first.instance and lease.instance.loads_adapters is True
    assert running.starts == 1 and running.loads == 1, "the adapter needed a new process (was llama-server " \
        "built without scripts/llama_server_lora_load.patch? scripts/bootstrap.sh rebuilds it)"
    assert tuned != base_before
    assert _complete(running, None)[0] == base_before  # loaded unapplied: the base model's answers are unchanged
    assert _complete(running, adapter)[0] == tuned and running.loads == 1  # loaded once

    at_start = _engine(engines, tmp_path, "at_start")  # the same adapter given at start (--lora)
    at_start.add_adapters([adapter])
    assert _complete(at_start, adapter)[0] == tuned and at_start.loads == 0

    bad = tmp_path / "not-an-adapter.gguf"
    bad.write_bytes(b"GGUF not really")
    running.add_adapters([bad])
    with pytest.raises(EngineUnavailable, match=r"could not load adapter .*not-an-adapter"):
        running.acquire(bad)
    assert bad not in running.config_adapters()  # a later process is not started with it
    assert running.starts == 1 and _complete(running, None)[0] == base_before

"""``POST /qfnb/models/{name}/export`` (in-process): a tuned model's LoRA written as GGUF, and every
refusal one sentence with nothing written. The real round trip is in ``test_export_real.py``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter
from safetensors.numpy import save_file
from starlette.testclient import TestClient

from qfnb.protocol.platform.daemon import MODELS_ROUTE


def tiny_qwen2(path: Path) -> Path:
    """A one-block GGUF of the qwen2 architecture with the attention's q projection (8 x 8)."""
    writer = GGUFWriter(str(path), "qwen2")
    writer.add_block_count(1)
    writer.add_context_length(512)
    writer.add_tensor("token_embd.weight", np.ones((16, 8), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.eye(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def peft_adapter(folder: Path, module: str = "q_proj") -> Path:
    folder.mkdir(parents=True)
    prefix = f"base_model.model.model.layers.0.self_attn.{module}"
    save_file({f"{prefix}.lora_A.weight": np.full((2, 8), 0.5, dtype=np.float32),
               f"{prefix}.lora_B.weight": np.full((8, 2), 0.25, dtype=np.float32)},
              str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 4, "peft_type": "LORA"}))
    return folder


@pytest.fixture()
def client(client: TestClient, tmp_path: Path) -> TestClient:
    """The conftest's ``client`` with ``tiny-qwen`` added (:func:`tiny_qwen2`)."""
    added = client.post(MODELS_ROUTE, json={"path": str(tiny_qwen2(tmp_path / "tiny.gguf")), "name": "tiny-qwen"})
    assert added.status_code == 200, added.text
    return client


def tuned(client: TestClient, adapter_dir: Path | None, name: str = "my-tuned") -> None:
    store = client.app.state.platform.store  # type: ignore[attr-defined]
    model = store.insert("models", {"modelName": name, "source": "Train", "modelType": 0})
    store.insert("versions", {"modelId": model["id"], "version": "1", "baseModel": "tiny-qwen",
                              "adapterDir": str(adapter_dir) if adapter_dir else None, "state": "Ready"})


def export(client: TestClient, name: str, **body: Any) -> Any:
    return client.post(f"{MODELS_ROUTE}/{name}/export", json=body)


def test_the_adapter_is_written_as_a_llama_cpp_lora(client: TestClient, tmp_path: Path) -> None:
    tuned(client, peft_adapter(tmp_path / "adapter"))
    out = tmp_path / "exported.gguf"
    reply = export(client, "my-tuned", gguf=str(out))
    assert reply.status_code == 200, reply.text
    assert reply.json()["merged"] is False and reply.json()["base"] == "tiny-qwen"
    reader = GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.lora.alpha"].contents() == 4.0
    assert sorted(t.name for t in reader.tensors) == ["blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b"]
    # the platform serves the tuned model with the same file: the export is a copy of it
    assert out.read_bytes() == (tmp_path / "adapter" / "adapter.gguf").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    again = export(client, "my-tuned", gguf=str(out), overwrite=True)
    assert again.status_code == 200, again.text



def test_a_link_planted_at_a_guessable_temporary_name_is_not_written_through(client: TestClient,
                                                                             tmp_path: Path) -> None:
    """The export's temporary file is made with mkstemp (O_EXCL, 0600) in the target folder: a symlink
    planted where the old name (``.<name>.tmp<pid>``) was is neither followed nor removed."""
    tuned(client, peft_adapter(tmp_path / "adapter"))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted = tmp_path / f".exported.gguf.tmp{os.getpid()}"
    planted.symlink_to(victim)
    reply = export(client, "my-tuned", gguf=str(tmp_path / "exported.gguf"))
    assert reply.status_code == 200, reply.text
    assert victim.read_text() == "precious" and planted.is_symlink()
    assert stat.S_IMODE((tmp_path / "exported.gguf").stat().st_mode) & 0o077 == 0

@pytest.mark.parametrize(("body", "message"), [
    ({}, "give the path to write"),
    ({"gguf": "relative.gguf"}, "must be absolute"),
    ({"gguf": "/tmp/x.bin"}, "must end in .gguf"),
    ({"gguf": "/no/such/folder/x.gguf"}, "does not exist"),
])
def test_a_bad_path_is_refused_before_anything(client: TestClient, tmp_path: Path, body: dict[str, Any],
                                               message: str) -> None:
    tuned(client, peft_adapter(tmp_path / "adapter"))
    reply = export(client, "my-tuned", **body)
    assert reply.status_code == 400 and message in reply.json()["error"]
    assert not (tmp_path / "adapter" / "adapter.gguf").exists()  # not even converted


def test_refusals_name_the_reason_and_write_nothing(client: TestClient, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.gguf"
    assert "no tuned model named 'nobody'" in export(client, "nobody", gguf=str(out)).json()["error"]
    tuned(client, None, name="a-preset")
    assert "is a base model, not a tuned one" in export(client, "a-preset", gguf=str(out)).json()["error"]
    tuned(client, peft_adapter(tmp_path / "odd", module="no_such_proj"), name="odd-tuned")
    reply = export(client, "odd-tuned", gguf=str(out))
    assert reply.status_code == 400 and "cannot be written as a llama.cpp LoRA" in reply.json()["error"]
    tuned(client, peft_adapter(tmp_path / "adapter"))
    monkeypatch.setenv("QFNB_LLAMA_EXPORT_LORA", str(tmp_path / "missing-tool"))
    reply = export(client, "my-tuned", gguf=str(out), merge=True)
    assert reply.status_code == 400 and "llama-export-lora" in reply.json()["error"]
    assert not out.exists()
    out.write_bytes(b"mine")
    reply = export(client, "my-tuned", gguf=str(out))
    assert reply.status_code == 400 and "already exists" in reply.json()["error"] and out.read_bytes() == b"mine"

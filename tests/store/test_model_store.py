"""The model store (``qfnb models add``): checks, storing once, naming, removing, and the registry serving it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter
from safetensors.numpy import save_file

from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store import byom
from qfnb.local.engines.store.model_check import NotAModel
from qfnb.local.engines.store.model_store import ModelStore


def tiny_gguf(path: Path, arch: str = "llama", template: str | None = "{{ messages }}") -> Path:
    """A small, complete GGUF (header, metadata, two tensors)."""
    writer = GGUFWriter(str(path), arch)
    writer.add_context_length(2048)
    if template:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.arange(64 * 8, dtype=np.float32).reshape(64, 8))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_cross_encoder(path: Path) -> Path:
    """A small GGUF with a classification head (``cls.output``), as a reranker conversion has."""
    writer = GGUFWriter(str(path), "bert")
    writer.add_context_length(512)
    writer.add_tensor("token_embd.weight", np.ones((64, 8), dtype=np.float32))
    writer.add_tensor("cls.output.weight", np.ones((1, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()} if root.exists() else {}


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    return ModelStore()


def test_a_gguf_is_stored_once_hard_linked_and_named(store: ModelStore, tmp_path: Path) -> None:
    src = tiny_gguf(tmp_path / "mine.gguf")
    entry = store.add(src, "my-llama")
    assert entry.kind == "gguf" and entry.roles == ("chat", "completion") and entry.arch == "llama"
    assert entry.ctx == 2048 and entry.has_template and entry.size == src.stat().st_size
    stored = Path(entry.path)
    assert stored.parent.name == f"sha256-{entry.digest}"
    assert os.stat(stored).st_ino == os.stat(src).st_ino  # same file system: a hard link, not a copy
    again = store.add(src, "my-llama-2", roles=("completion",))
    assert again.path == entry.path and again.roles == ("completion",)
    assert [m.name for m in store.models()] == ["my-llama", "my-llama-2"]
    assert json.loads(store.manifest.read_text())["my-llama"]["digest"] == entry.digest
    # two names share the weights: removing one frees nothing, removing the last frees the file
    assert store.usage()["models"][0]["freed_by_rm"] == 0
    assert store.remove("my-llama") == 0 and stored.is_file()
    assert store.usage()["models"][0]["freed_by_rm"] == 0  # the source's hard link keeps the bytes on disk
    src.unlink()
    assert store.remove("my-llama-2") == entry.size and not stored.exists()


def test_a_copy_is_checked_when_a_hard_link_is_impossible(store: ModelStore, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = tiny_gguf(tmp_path / "mine.gguf")

    def no_link(a: object, b: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    entry = store.add(src, "copied")
    assert os.stat(entry.path).st_ino != os.stat(src).st_ino
    assert Path(entry.path).read_bytes() == src.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "text", "header-cut", "unknown-arch"])
def test_a_damaged_or_foreign_file_is_refused_and_the_store_is_unchanged(store: ModelStore, tmp_path: Path,
                                                                        damage: str) -> None:
    store.add(tiny_gguf(tmp_path / "ok.gguf"), "kept")
    before = snapshot(store.root)
    bad = tmp_path / "bad.gguf"
    if damage == "text":
        bad.write_text("just some notes, not weights\n" * 20)
    elif damage == "unknown-arch":
        tiny_gguf(bad, arch="no-such-architecture")
    else:
        full = tiny_gguf(tmp_path / "full.gguf").read_bytes()
        bad.write_bytes(full[: len(full) - 100] if damage == "truncated" else full[:40])
    with pytest.raises(NotAModel) as err:
        store.add(bad, "broken")
    message = str(err.value)
    assert "bad.gguf" in message and message.count(".") >= 1 and "\n" not in message
    expected = {"truncated": "truncated", "text": "not a GGUF", "header-cut": "truncated",
                "unknown-arch": "cannot load"}[damage]
    assert expected in message
    assert snapshot(store.root) == before and store.get("broken") is None


def test_names_roles_and_options_are_checked(store: ModelStore, tmp_path: Path) -> None:
    src = tiny_gguf(tmp_path / "m.gguf")
    for kwargs, words in (({"name": "has space"}, "not usable"), ({"name": "gemma-3-270m"}, "built-in"),
                          ({"name": "x", "roles": ("embeddings",)}, "does not fit"),
                          ({"name": "x", "roles": ("paint",)}, "unknown"), ({"name": "x", "ctx": 5}, "ctx"),
                          ({"name": "x", "keep_alive": -5}, "keep_alive")):
        name = str(kwargs.pop("name"))
        with pytest.raises(NotAModel, match=words):
            store.add(src, name, **kwargs)  # type: ignore[arg-type]
    store.add(src, "x")
    with pytest.raises(NotAModel, match="already"):
        store.add(src, "X")


def _hf_dir(path: Path, *, sentence: bool = False, cut: bool = False) -> Path:
    path.mkdir()
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(path / "model.safetensors"))
    if cut:
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[:-10])
    (path / "tokenizer.json").write_text("{}")
    (path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                                                  "max_position_embeddings": 32768}))
    if sentence:
        (path / "modules.json").write_text("[]")
    return path


def test_hugging_face_dirs_become_a_finetune_base_or_an_embedder(store: ModelStore, tmp_path: Path) -> None:
    base = store.add(_hf_dir(tmp_path / "causal"), "my-base")
    assert base.kind == "hf-causal-lm" and base.roles == ("finetune-base",) and base.ctx == 4096
    assert (Path(base.path) / ".complete").is_file() and (Path(base.path) / "config.json").is_file()
    emb = store.add(_hf_dir(tmp_path / "st", sentence=True), "my-embedder")
    assert emb.kind == "sentence-transformers" and emb.roles == ("embeddings",)
    before = snapshot(store.root)
    with pytest.raises(NotAModel, match="truncated"):
        store.add(_hf_dir(tmp_path / "cut", cut=True), "cut")
    assert snapshot(store.root) == before


def test_the_registry_serves_added_models_and_drops_removed_ones(store: ModelStore, tmp_path: Path) -> None:
    registry = EngineRegistry(tmp_path / "data", options=EngineOptions(slots=2))
    try:
        names = {m.name for m in registry.served_models()}
        store.add(tiny_gguf(tmp_path / "m.gguf"), "byo-chat", keep_alive=-1)
        store.add(_hf_dir(tmp_path / "st", sentence=True), "byo-embed")
        store.add(_hf_dir(tmp_path / "causal"), "byo-base", roles=("finetune-base",))
        registry.reload_store()
        served = {m.name: m for m in registry.served_models()}
        assert set(served) - names == {"byo-chat", "byo-embed", "byo-base"}
        # a fine-tune base is a served chat model (through transformers): its tuned adapters serve beside it
        assert served["byo-base"].kind == "transformers" and "chat" in served["byo-base"].api_types
        assert served["byo-chat"].api_types == ("chat", "completions") and served["byo-chat"].endpoint == "byo_chat"
        assert registry.resolve("embeddings", "byo-embed").name == "byo-embed"
        store.remove("byo-chat")
        registry.reload_store()
        assert "byo-chat" not in {m.name for m in registry.served_models()}
    finally:
        registry.close()


def test_keep_alive_maps_to_the_idle_stop() -> None:
    assert byom.idle_seconds(None, 600.0) == 600.0
    assert byom.idle_seconds(-1, 600.0) == float("inf")
    assert byom.idle_seconds(30, 600.0) == 30.0


def test_memory_counts_children_started_from_any_thread() -> None:
    procs: list[subprocess.Popen[bytes]] = []
    code = "import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); " \
           "time.sleep(60)"

    def start() -> None:
        procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE))

    worker = threading.Thread(target=start)
    worker.start()
    worker.join()
    try:
        assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == b"1"
        assert procs[0].pid in byom.descendants(os.getpid())
        assert byom.rss_bytes(procs[0].pid) >= 64 * 2**20
    finally:
        procs[0].kill()
        procs[0].wait()
    assert byom.rss_bytes(procs[0].pid) == 0  # reaped: nothing resident is counted


def test_a_registry_sees_a_model_another_process_added(store: ModelStore, tmp_path: Path) -> None:
    registry = EngineRegistry(tmp_path / "data", options=EngineOptions(slots=2))
    try:
        assert "late" not in {m.name for m in registry.served_models()}
        ModelStore(store.root).add(tiny_gguf(tmp_path / "m.gguf"), "late")  # e.g. another data dir's daemon
        assert "late" in {m.name for m in registry.served_models()}  # no reload call: the manifest changed
        ModelStore(store.root).remove("late")
        assert "late" not in {m.name for m in registry.served_models()}
    finally:
        registry.close()


def test_names_are_listed_per_data_dir_while_the_weights_stay_shared(store: ModelStore, tmp_path: Path) -> None:
    mine = ModelStore(store.root, data_dir=tmp_path / "mine")
    theirs = ModelStore(store.root, data_dir=tmp_path / "theirs")
    weights = tiny_gguf(tmp_path / "m.gguf")
    ours = mine.add(weights, "shared-chat")
    registry = EngineRegistry(tmp_path / "mine", options=EngineOptions(slots=2))
    try:
        served = {m.name for m in registry.served_models()}
        their = theirs.add(weights, "their-chat")  # another data dir, the same file
        assert their.path == ours.path and len(list(store.root.glob("sha256-*/*.gguf"))) == 1  # stored once
        assert [m.name for m in mine.models()] == ["shared-chat"]
        assert [m.name for m in theirs.models()] == ["their-chat"]
        assert {m.name for m in registry.served_models()} == served  # their name does not appear here
        theirs.add(weights, "shared-chat")  # the same name in another data dir is a name of its own
        weights.unlink()  # the store's hard link is the weights' last link now
        assert mine.freed_by(ours) == 0  # their names still use the weights
        assert mine.remove("shared-chat") == 0 and Path(ours.path).is_file()
        assert [m.name for m in theirs.models()] == ["shared-chat", "their-chat"] and mine.models() == []
        assert "shared-chat" not in {m.name for m in registry.served_models()}
        with pytest.raises(KeyError):
            mine.remove("their-chat")  # one data dir cannot remove another's name
        theirs.remove("their-chat")
        assert theirs.remove("shared-chat") > 0 and not Path(ours.path).exists()  # the last name frees them
    finally:
        registry.close()


def test_unowned_names_from_an_older_manifest_are_listed_in_every_data_dir(store: ModelStore,
                                                                          tmp_path: Path) -> None:
    store.add(tiny_gguf(tmp_path / "m.gguf"), "old-chat")  # a store opened without a data dir
    assert [m.name for m in ModelStore(store.root, data_dir=tmp_path / "any").models()] == ["old-chat"]


def test_an_added_gguf_base_is_converted_once_to_a_trainable_dir_beside_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.local.engines.store import assets
    from qfnb.local.training import lora
    from qfnb.local.training.spec import Hyper, WorkerSpec

    calls: list[Path] = []

    def convert(gguf: Path, out: Path, *, gemma: bool) -> None:  # the transformers conversion, recorded
        calls.append(gguf)
        out.mkdir()
        (out / ".complete").write_text(gguf.name)

    monkeypatch.setattr(assets, "_convert_gguf_to_hf", convert)
    (tmp_path / "sha256-x").mkdir()
    gguf = tiny_gguf(tmp_path / "sha256-x" / "m.gguf")
    spec = WorkerSpec(base_model="byo", train_file=tmp_path / "t.jsonl", hyper=Hyper(), base_model_path=gguf)
    first, second = lora.base_model_dir(spec), lora.base_model_dir(spec)
    assert first == second == tmp_path / "sha256-x" / "m-hf-bf16" and calls == [gguf]


def test_a_cross_encoder_gguf_is_a_reranker_served_by_llama_servers_reranking_mode(store: ModelStore,
                                                                                    tmp_path: Path) -> None:
    entry = store.add(tiny_cross_encoder(tmp_path / "rr.gguf"), "my-rerank")
    assert entry.roles == ("rerank",) and entry.ctx == 512
    spec = byom.spec_for(entry)
    assert spec is not None and spec.kind == "llama.cpp" and spec.api_types == ("reranker",)
    with pytest.raises(NotAModel, match="role 'chat' does not fit this model; it can be: rerank"):
        store.add(tmp_path / "rr.gguf", "rr-chat", roles=("chat",))
    with pytest.raises(NotAModel, match="role 'rerank' does not fit this model; it can be: chat, completion"):
        store.add(tiny_gguf(tmp_path / "chat.gguf"), "chat-rr", roles=("rerank",))
    registry = EngineRegistry(tmp_path / "data", options=EngineOptions(slots=1))
    try:
        server = registry.cross_encoder("my-rerank").server
        assert "--reranking" in server.config.argv(server.binary, ())
        with pytest.raises(ValueError, match="ranks by embeddings"):
            registry.cross_encoder("all-MiniLM-L6-v2")
    finally:
        registry.close()

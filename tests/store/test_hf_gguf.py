"""An HF causal-LM dir written as GGUF (in-process, a tiny qwen2 with a real byte-level BPE tokenizer):
llama.cpp's keys and tensor names, every embedding row a token, and the store serving the GGUF.
The real model's round trip through ``llama-server`` is ``test_hf_gguf_real.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from qfnb.local.engines.store import byom
from qfnb.local.engines.store.hf_gguf import HFConversionError, convert
from qfnb.local.engines.store.model_store import SERVED_GGUF, ModelStore

VOCAB, HIDDEN, FFN = 300, 16, 32


def tiny_qwen2_dir(folder: Path, model_type: str = "qwen2") -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["hello world, the capital of France is Paris"] * 20, trainers.BpeTrainer(
        vocab_size=280, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>",
                                                              "pad_token": "<|endoftext|>"}))
    (folder / "chat_template.jinja").write_text("{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}")
    (folder / "config.json").write_text(json.dumps({
        "model_type": model_type, "architectures": ["Qwen2ForCausalLM"], "vocab_size": VOCAB,
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_theta": 1000000.0}, "tie_word_embeddings": False}))
    kv = HIDDEN // 2
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "lm_head.weight": (VOCAB, HIDDEN),
              "model.norm.weight": (HIDDEN,), "model.layers.0.input_layernorm.weight": (HIDDEN,),
              "model.layers.0.post_attention_layernorm.weight": (HIDDEN,),
              "model.layers.0.self_attn.q_proj.weight": (HIDDEN, HIDDEN),
              "model.layers.0.self_attn.q_proj.bias": (HIDDEN,),
              "model.layers.0.self_attn.k_proj.weight": (kv, HIDDEN), "model.layers.0.self_attn.k_proj.bias": (kv,),
              "model.layers.0.self_attn.v_proj.weight": (kv, HIDDEN), "model.layers.0.self_attn.v_proj.bias": (kv,),
              "model.layers.0.self_attn.o_proj.weight": (HIDDEN, HIDDEN),
              "model.layers.0.mlp.gate_proj.weight": (FFN, HIDDEN), "model.layers.0.mlp.up_proj.weight": (FFN, HIDDEN),
              "model.layers.0.mlp.down_proj.weight": (HIDDEN, FFN)}
    import torch  # here, not at the top: collection would pay torch's import in every worker
    from safetensors.torch import save_file

    save_file({k: torch.randn(s, dtype=torch.bfloat16) for k, s in shapes.items()}, str(folder / "model.safetensors"))
    return folder


def test_a_qwen2_dir_becomes_a_gguf_llama_cpp_reads(tmp_path: Path) -> None:
    out = convert(tiny_qwen2_dir(tmp_path / "hf"), tmp_path / "out.gguf")
    reader = GGUFReader(str(out))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.token")}
    assert fields["general.architecture"] == "qwen2" and fields["qwen2.block_count"] == 1
    assert fields["qwen2.attention.head_count_kv"] == 1 and fields["qwen2.rope.freq_base"] == 1e6
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "qwen2"
    assert fields["tokenizer.ggml.eos_token_id"] > 0 and "<|im_start|>" in fields["tokenizer.chat_template"]
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == VOCAB  # padded to the embedding's rows
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 0
    types = reader.fields["tokenizer.ggml.token_type"]
    assert [int(types.parts[i][0]) for i in types.data[:3]] == [3, 3, 3]  # the added special tokens: CONTROL
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) >= {"token_embd.weight", "output.weight", "output_norm.weight", "blk.0.attn_q.bias",
                            "blk.0.attn_k.weight", "blk.0.ffn_down.weight", "blk.0.ffn_norm.weight"}
    assert tensors["blk.0.ffn_down.weight"].tensor_type.name == "F16"
    assert tensors["blk.0.attn_q.bias"].tensor_type.name == "F32"
    assert list(tensors["token_embd.weight"].shape) == [HIDDEN, VOCAB]  # ggml order: [in, out]


def test_the_store_serves_a_converted_dir_with_llama_cpp_and_others_with_transformers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    store = ModelStore()
    entry = store.add(tiny_qwen2_dir(tmp_path / "hf"), "tiny-hf", roles=("chat", "finetune-base"))
    assert (Path(entry.path) / SERVED_GGUF).is_file()
    spec = byom.spec_for(entry)
    assert spec is not None and spec.kind == "llama.cpp" and spec.path == Path(entry.path) / SERVED_GGUF
    with pytest.raises(HFConversionError, match="supported for qwen2 only"):
        convert(tiny_qwen2_dir(tmp_path / "other", model_type="mystery"), tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists() and np.all([not p.name.startswith(".") for p in tmp_path.iterdir()])

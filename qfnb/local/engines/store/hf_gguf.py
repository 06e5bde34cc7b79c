"""A Hugging Face causal-LM dir as a GGUF that ``llama-server`` serves (``qfnb models add DIR --role chat``).

Written with the ``gguf`` library: the architecture's hyper-parameters under llama.cpp's keys, the
byte-level BPE tokenizer (tokens, types, merges, special ids, chat template) and every weight under
its GGUF name (:func:`gguf.get_tensor_name_map`), matrices in f16 and norms and biases in f32.
Only architectures whose GGUF keeps the Hugging Face weights as they are (no permutation) and whose
tokenizer's pre-tokenizer llama.cpp names are converted; others raise :class:`HFConversionError`
(the dir is then served by transformers).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("qfnb.local.engines.store.hf_gguf")

#: model_type -> (GGUF architecture, llama.cpp's pre-tokenizer name)
SUPPORTED = {"qwen2": ("qwen2", "qwen2")}


class HFConversionError(ValueError):
    """The dir cannot be written as a GGUF that llama.cpp serves (the message says why)."""


def convert(hf_dir: Path, out: Path) -> Path:
    """Write ``out`` (f16 GGUF) from the HF causal-LM dir ``hf_dir``; reuses a complete ``out``."""
    import gguf

    if out.is_file():
        return out
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    model_type = str(config.get("model_type", ""))
    if model_type not in SUPPORTED:
        raise HFConversionError(f"converting a {model_type!r} model to GGUF is supported for "
                                f"{', '.join(SUPPORTED)} only")
    arch, pre = SUPPORTED[model_type]
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        _hyper(writer, config, hf_dir.name)
        _tokenizer(writer, hf_dir, pre, int(config["vocab_size"]))
        count = _tensors(writer, hf_dir, arch, int(config["num_hidden_layers"]))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("converted %s to %s (%d tensors, f16)", hf_dir, out, count)
    return out


def _hyper(writer: Any, config: dict[str, Any], name: str) -> None:
    import gguf

    heads = int(config["num_attention_heads"])
    rope = config.get("rope_parameters") or {}
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_freq_base(float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


def _tokenizer(writer: Any, hf_dir: Path, pre: str, n_vocab: int) -> None:
    import gguf
    from gguf.vocab import BpeVocab

    try:
        vocab = BpeVocab(hf_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise HFConversionError(f"its tokenizer is not a byte-level BPE tokenizer llama.cpp reads ({exc})") from None
    entries = list(vocab.all_tokens())  # (text, score, type)
    tokens, types = [e[0] for e in entries], [e[2] for e in entries]
    for token_id, special in _added(hf_dir).items():  # added tokens may sit inside the BPE vocab too
        if token_id < len(types):
            types[token_id] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    if len(tokens) > n_vocab:
        raise HFConversionError(f"its tokenizer has {len(tokens)} tokens, more than the model's {n_vocab}")
    for i in range(len(tokens), n_vocab):  # rows of the embedding no token uses
        tokens.append(f"[PAD{i}]".encode())
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=n_vocab).add_to_gguf(writer)
    template = hf_dir / "chat_template.jinja"
    if template.is_file():  # transformers 5 keeps the template beside tokenizer_config.json
        writer.add_chat_template(template.read_text(encoding="utf-8"))


def _added(hf_dir: Path) -> dict[int, bool]:
    """The tokenizer's added tokens: id -> special (a control token such as ``<|im_start|>``, which
    llama.cpp parses whole in a prompt) or not (user-defined text that is still one token)."""
    raw = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    return {int(t["id"]): bool(t.get("special")) for t in raw.get("added_tokens") or []}


def _tensors(writer: Any, hf_dir: Path, arch: str, blocks: int) -> int:
    import gguf
    import numpy as np
    import torch
    from safetensors.torch import load_file

    arch_enum = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    names = gguf.get_tensor_name_map(arch_enum, blocks)
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise HFConversionError(f"{hf_dir} has no .safetensors weights")
    count = 0
    for file in files:
        for key, value in load_file(str(file)).items():
            name = names.get_name(key, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise HFConversionError(f"weight {key!r} has no GGUF name for {arch}")
            data = value.to(torch.float32).numpy()
            writer.add_tensor(name, data.astype(np.float16) if data.ndim == 2 else data)
            count += 1
    return count

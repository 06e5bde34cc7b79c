"""Convert a peft LoRA adapter to a llama.cpp LoRA GGUF, so a fine-tuned model is served by llama.cpp.

llama.cpp adds ``scale * alpha / rank * B @ A`` to each base weight. The adapter GGUF carries
``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``, the base model's
architecture, and for every adapted weight ``<gguf name>.weight.lora_a`` (peft's A, ``[rank, in]``)
and ``<gguf name>.weight.lora_b`` (peft's B, ``[out, rank]``), in f32 (llama.cpp pairs them with the
base tensor by that full name and crashes at decode time on names it cannot pair). Only architectures whose GGUF keeps
the Hugging Face linear weights unpermuted (gemma3, qwen2) are converted; others raise.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("qfnb.local.training")

SUPPORTED_ARCHES = ("gemma3", "qwen2")
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


class LoraConversionError(ValueError):
    """The adapter cannot be expressed as a llama.cpp LoRA for this base model."""


def _base_info(base_gguf: Path) -> tuple[str, int, set[str]]:
    # deferred: loads gguf and numpy (the daemon's start does not)
    from qfnb.local.engines.store.gguf_header import read_header

    header = read_header(base_gguf)
    arch = str(header.fields["general.architecture"])
    return arch, int(header.fields[f"{arch}.block_count"]), {t.name for t in header.tensors}


def _scale_alpha(config: dict[str, Any]) -> float:
    """The ``adapter.lora.alpha`` that makes llama.cpp's ``alpha / rank`` equal peft's scaling."""
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise LoraConversionError("per-module LoRA ranks/alphas (rank_pattern/alpha_pattern) are not supported")
    if config.get("use_dora"):
        raise LoraConversionError("DoRA adapters are not supported by llama.cpp")
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha * math.sqrt(r) if config.get("use_rslora") else alpha  # rsLoRA scales by alpha / sqrt(r)


def convert_adapter(adapter_dir: Path, out: Path, *, base_gguf: Path) -> Path:
    """Write ``out`` (a LoRA GGUF) from the peft adapter in ``adapter_dir``, for the base GGUF
    ``base_gguf``; reuses an up-to-date ``out``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    weights_file = adapter_dir / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise FileNotFoundError(f"{adapter_dir} has no adapter_model.safetensors")
    if out.is_file() and out.stat().st_mtime_ns >= weights_file.stat().st_mtime_ns:
        return out
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    alpha = _scale_alpha(config)
    arch, blocks, base_tensors = _base_info(base_gguf)
    if arch not in SUPPORTED_ARCHES:
        raise LoraConversionError(f"LoRA export to llama.cpp is supported for {SUPPORTED_ARCHES}, not {arch!r}")
    arch_enum = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    name_map = gguf.get_tensor_name_map(arch_enum, blocks)

    pairs: dict[str, dict[str, Any]] = {}
    for key, value in load_file(str(weights_file)).items():
        m = _KEY.match(key)
        if m is None:
            raise LoraConversionError(f"unexpected adapter tensor {key!r} (only LoRA A/B weights can be exported)")
        gguf_name = name_map.get_name(m["module"])
        if gguf_name is None or f"{gguf_name}.weight" not in base_tensors:
            raise LoraConversionError(f"adapter module {m['module']!r} has no matching tensor in {base_gguf.name}")
        pairs.setdefault(gguf_name, {})[m["ab"]] = value.astype(np.float32)

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch=arch)
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name in sorted(pairs):
        a, b = pairs[name].get("A"), pairs[name].get("B")
        if a is None or b is None or a.shape[0] != b.shape[1]:
            raise LoraConversionError(f"{name}: LoRA A/B missing or with mismatched rank")
        writer.add_tensor(f"{name}.weight.lora_a", a)  # [rank, in]  -> ggml ne = [in, rank]
        writer.add_tensor(f"{name}.weight.lora_b", b)  # [out, rank] -> ggml ne = [rank, out]
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, out)
    log.info("wrote llama.cpp LoRA %s (%d adapted weights, alpha %.3g)", out, len(pairs), alpha)
    return out

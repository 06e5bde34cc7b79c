"""A GGUF with a real model's architecture and tokenizer, at that model's size or a larger one of
its family, with random Q8_0 weights: for throughput runs on a machine that cannot download
weights (a lent GPU box). Decode speed depends on the shapes, not on the values.

    .venv/bin/python bench/shaped_gguf.py LIKE.gguf OUT.gguf [--size 7b]

``--size 7b`` scales a Qwen2.5-0.5B GGUF to Qwen2.5-7B's shape (hidden 3584, FFN 18944, 28 layers,
28 query / 4 KV heads). Then, for instance: ``llama-server -m OUT.gguf -ngl 99 --parallel 16`` and
``bench/serving.py --engine-url http://127.0.0.1:8080 --slots 16 --skip-lora``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

log = logging.getLogger("bench.shaped_gguf")
# Qwen2.5-0.5B dimension -> Qwen2.5-7B dimension, and the hyper-parameters that follow
SIZES: dict[str, tuple[dict[int, int], dict[str, int]]] = {
    "7b": ({896: 3584, 4864: 18944, 128: 512},
           {"embedding_length": 3584, "feed_forward_length": 18944, "block_count": 28,
            "attention.head_count": 28, "attention.head_count_kv": 4}),
    # the same shapes with two layers: a small real-architecture GGUF for tests of the model store
    "2layer": ({}, {"block_count": 2}),
}
BLOCK = np.dtype([("d", "<f2"), ("qs", "i1", (32,))])  # one Q8_0 block: a scale and 32 int8


def write(like: str, out: str, size: str | None) -> None:
    reader = GGUFReader(like)
    arch = str(reader.fields["general.architecture"].contents())
    dims, hparams = SIZES[size] if size else ({}, {})
    hparams = {f"{arch}.{k}": v for k, v in hparams.items()}
    layers = int(hparams.get(f"{arch}.block_count", reader.fields[f"{arch}.block_count"].contents()))
    writer = GGUFWriter(out, arch)
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        kind = fld.types[0]
        if kind == GGUFValueType.ARRAY:
            writer.add_key_value(key, fld.contents(), kind, sub_type=fld.types[-1])
        else:
            writer.add_key_value(key, hparams.get(key, fld.contents()), kind)
    pool = np.zeros(1 << 20, dtype=BLOCK)
    pool["d"] = 0.002
    pool["qs"] = np.random.default_rng(0).integers(-127, 128, size=(1 << 20, 32), dtype=np.int8)
    tensors: list[tuple[str, list[int]]] = []
    for t in reader.tensors:
        shape = [dims.get(int(x), int(x)) for x in reversed(t.shape)]
        if not t.name.startswith("blk."):
            tensors.append((t.name, shape))
        elif t.name.startswith("blk.0."):
            tensors += [(t.name.replace("blk.0.", f"blk.{i}."), shape) for i in range(layers)]
    for name, shape in tensors:
        if len(shape) < 2:
            writer.add_tensor(name, np.full(shape, 1.0 if "norm" in name else 0.0, dtype=np.float32))
            continue
        rows, cols = shape
        data: Any = np.resize(pool, rows * cols // 32).view(np.uint8).reshape(rows, cols // 32 * BLOCK.itemsize)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("like")
    ap.add_argument("out")
    ap.add_argument("--size", choices=sorted(SIZES))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    write(args.like, args.out, args.size)
    log.info("wrote %s in %.0f s", args.out, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A user's ONNX embedder (``qfnb models add x.onnx --role embed``, its ``tokenizer.json`` beside it),
run by onnxruntime: the tokenizer's ids in, one vector per text out. A model whose first output is
a token-level ``(batch, tokens, dim)`` is mean-pooled over the attention mask (what
sentence-transformers does for BERT-style encoders); a ``(batch, dim)`` output is taken as the
sentence vector. Vectors are L2-normalised, like every engine's here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qfnb.local.engines.base import CountingEmbedder, check_texts

#: the inputs an encoder export takes; ``token_type_ids`` is optional (zeros when asked for)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: the most tokens one text keeps (BERT-style encoders' position table)
MAX_TOKENS = 512
TOKENIZER = "tokenizer.json"
#: what the `onnx` extra installs (a missing onnxruntime names it)
PIP = "pip install 'qfnb[onnx]'"


def session(model: Path) -> Any:
    """An onnxruntime session on one thread a call (calls run side by side: ``parallel``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeError(f"onnxruntime is not installed, so ONNX models cannot be served: {PIP}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def io_problem(sess: Any) -> str | None:
    """What makes a loaded session not an encoder this engine can run (None: it is one)."""
    inputs = {i.name for i in sess.get_inputs()}
    if not {"input_ids", "attention_mask"} <= inputs:
        return f"its inputs are {sorted(inputs)}; an encoder export takes input_ids and attention_mask"
    unknown = sorted(inputs - set(INPUTS))
    if unknown:
        return f"it takes inputs this engine does not give ({', '.join(unknown)}); it gives {', '.join(INPUTS)}"
    rank = len(sess.get_outputs()[0].shape or ())
    if rank not in (2, 3):
        return (f"its first output has rank {rank}; an embedder gives (batch, dim) or (batch, tokens, dim) to "
                "be mean-pooled")
    return None


class OnnxEmbedder(CountingEmbedder):
    """An ONNX encoder and its HF ``tokenizers`` tokenizer; texts past :data:`MAX_TOKENS` are cut."""

    batch_texts = 32

    def __init__(self, name: str, folder: Path) -> None:
        from tokenizers import Tokenizer

        models = sorted(folder.glob("*.onnx"))
        if len(models) != 1:
            raise RuntimeError(f"{name}: {folder} should hold one .onnx model, found {len(models)}")
        self.name, self.parallel = name, os.cpu_count() or 1
        self._session = session(models[0])
        problem = io_problem(self._session)
        if problem:
            raise RuntimeError(f"{name}: {models[0].name}: {problem}")
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()

    def embed_each(self, texts: list[str]) -> tuple[list[list[float]], list[float]]:
        import numpy as np

        check_texts(texts)
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        out = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        if out.ndim == 3:  # token vectors: the mean over the text's own tokens
            weights = mask[:, :, None].astype(np.float32)
            out = (out * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out.tolist(), [float(n) for n in mask.sum(axis=1)]

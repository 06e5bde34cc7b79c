"""The one URL/path helper the client and its OpenAI faces join and read paths with."""

from __future__ import annotations

from qfnb._core.transport.urls import last_part, under, url_of


def test_a_base_url_means_the_same_with_or_without_its_trailing_slash() -> None:
    assert url_of("http://h:1/", "/v2/chat") == url_of("http://h:1", "/v2/chat") == "http://h:1/v2/chat"


def test_a_paths_last_part_ignores_a_trailing_slash() -> None:
    assert last_part("/v1/batches/") == last_part("/v1/batches") == "batches"
    assert last_part("/v2/embeddings") == "embeddings"


def test_names_go_under_a_path_quoted_as_one_part_each() -> None:
    assert under("/v1/batches/", "batch 1") == "/v1/batches/batch%201"
    assert under("/v1/responses", "resp/../x") == "/v1/responses/resp%2F..%2Fx"
    assert under("/v1/batches", "files", "f/1", "content", up=1) == "/v1/files/f%2F1/content"
    assert under("/v1", "models", "Qwen2.5") == "/v1/models/Qwen2.5"

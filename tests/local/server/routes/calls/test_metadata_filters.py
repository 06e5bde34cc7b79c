"""``metadata[KEY]=VALUE`` list filters are held to OpenAI's caps on metadata (16 pairs, keys up to 64
characters, values up to 512): beyond them a 400 in OpenAI's error shape naming ``metadata``, before
any store work; 16 pairs at the caps still list."""

from __future__ import annotations

from typing import Any

import pytest
from platform_helpers import bearer
from starlette.testclient import TestClient

from qfnb.local.domain.records import chat_completions as stored

#: the OpenAI-style list routes that filter by metadata
LISTS = ("/v1/chat/completions", "/v2/chat/completions", "/v1/responses", "/v1/fine_tuning/jobs",
         "/v2/fine_tuning/jobs")


def _list(client: TestClient, path: str, pairs: dict[str, str]) -> Any:
    return client.get(path, params={f"metadata[{k}]": v for k, v in pairs.items()},
                      headers={"Authorization": f"Bearer {bearer(client)}"})


@pytest.mark.parametrize("path", LISTS)
def test_sixteen_pairs_at_the_caps_still_list(client: TestClient, path: str) -> None:
    resp = _list(client, path, {f"k{i:02d}{'x' * 61}": "v" * 512 for i in range(16)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == []


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(("pairs", "says"), [
    ({f"k{i}": "v" for i in range(17)}, "metadata: filter by at most 16 metadata[KEY]=VALUE pairs, got 17"),
    ({f"k{i}": "v" for i in range(2000)}, "at most 16 metadata[KEY]=VALUE pairs, got 2000"),
    ({"k" * 65: "v"}, "keys must be strings of 1 to 64 characters"),
    ({"k": "v" * 513}, "metadata.k: must be a string of at most 512 characters"),
], ids=["17-pairs", "2000-pairs", "long-key", "long-value"])
def test_a_filter_past_the_caps_is_a_400_naming_metadata(client: TestClient, path: str, pairs: dict[str, str],
                                                        says: str) -> None:
    resp = _list(client, path, pairs)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert says in error["message"] and error["param"].startswith("metadata")
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_value"


def test_sixteen_pairs_find_the_record_holding_them(client: TestClient) -> None:
    pairs = {f"k{i:02d}{'x' * 61}": f"{i:03d}" + "v" * 509 for i in range(16)}
    stored.save(client.app.state.platform.store, {"id": "chatcmpl-16", "object": "chat.completion",  # type: ignore[attr-defined]
                                                  "model": "tiny-chat", "choices": []}, {"metadata": pairs})
    found = _list(client, "/v1/chat/completions", pairs)
    assert found.status_code == 200, found.text
    assert [c["id"] for c in found.json()["data"]] == ["chatcmpl-16"]
    assert _list(client, "/v1/chat/completions", {**pairs, "k00" + "x" * 61: "other"}).json()["data"] == []

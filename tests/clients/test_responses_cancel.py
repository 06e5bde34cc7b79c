"""A Responses stream whose client leaves is no longer "in progress": a cancel after it is not
answered "cancelled" for a response that was never stored (issue 54)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from platform_doubles import FakeChat

from tests.fakes.local_platform import ServedPlatform


@pytest.fixture
def slow_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat double answers a prompt starting with SLOW a word every 0.2 s."""
    words = FakeChat._words

    def slow(self: FakeChat, text: str, sampling: Any) -> Iterator[Any]:
        for delta in words(self, text, sampling):
            if text.startswith("SLOW"):
                time.sleep(0.2)
            yield delta

    monkeypatch.setattr(FakeChat, "_words", slow)


def test_a_cancel_after_the_client_left_is_not_answered_cancelled(served: ServedPlatform, slow_words: None) -> None:
    headers = {"Authorization": f"Bearer {served.bearer_token()}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
        body = {"model": "tiny-chat", "input": "SLOW " + " ".join(["word"] * 40), "stream": True}
        with client.stream("POST", "/v1/responses", json=body) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    rid = json.loads(line[5:])["response"]["id"]
                    break
        # the client left; the platform notices within a word or two
        deadline = time.monotonic() + 10
        while (answer := client.post(f"/v1/responses/{rid}/cancel")).status_code == 200:
            assert time.monotonic() < deadline, f"still 'cancelled' after the client left: {answer.json()}"
            time.sleep(0.1)
        assert answer.status_code == 404 and client.get(f"/v1/responses/{rid}").status_code == 404

"""Stored responses (qfnb.local.domain.records.responses): a chain's items come back oldest first from a
fresh connection to the same SQLite file, and a deleted or unknown turn is NotFound."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb.local.domain.records import responses as stored
from qfnb.local.domain.state.store import Store
from qfnb.local.domain.state.values import NotFound
from qfnb.protocol.wires.responses.answer import message_item, with_ids


def _user(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_a_chain_is_rebuilt_from_a_reopened_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "platform.sqlite3")
    previous = None
    for turn in range(3):
        response = {"id": f"resp_{turn}", "previous_response_id": previous,
                    "output": [message_item(f"msg_{turn}", f"answer {turn}")]}
        stored.save(store, response, with_ids([_user(f"question {turn}")]), instructions="be brief",
                    cache_key="resp_0")
        previous = response["id"]
    store.close()
    reopened = Store(tmp_path / "platform.sqlite3")
    items = stored.history(reopened, "resp_2")
    texts = [i["content"][0]["text"] for i in items]
    assert texts == ["question 0", "answer 0", "question 1", "answer 1", "question 2", "answer 2"]
    assert all(i["id"] for i in items)
    assert stored.get(reopened, "resp_1")["cache_key"] == "resp_0"
    assert stored.delete(reopened, "resp_1") == {"id": "resp_1", "object": "response.deleted", "deleted": True}
    with pytest.raises(NotFound, match="previous_response_id"):
        stored.history(reopened, "resp_2")  # a deleted turn breaks the chain, by name
    with pytest.raises(NotFound):
        stored.get(reopened, "not-a-response")

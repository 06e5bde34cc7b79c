"""Stored chat completions (qfnb.local.domain.records.chat_completions): what a ``store: true`` chat keeps
comes back from a fresh connection to the same SQLite file, its messages with ids and their parts,
and an update changes only the metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb.local.domain.records import chat_completions as stored
from qfnb.local.domain.state.store import Store
from qfnb.local.domain.state.values import NotFound


def _completion(cid: str, model: str = "tiny-chat") -> dict:
    return {"id": cid, "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}


def test_a_stored_completion_outlives_its_connection(tmp_path: Path) -> None:
    store = Store(tmp_path / "platform.sqlite3")
    parts = [{"type": "text", "text": "look"}, {"type": "text", "text": "here"}]
    asked = {"messages": [{"role": "developer", "content": "terse"}, {"role": "user", "content": parts}],
             "metadata": {"trip": "rome"}, "temperature": 0.2, "safety_identifier": "h-1", "user": "older"}
    stored.save(store, _completion("chatcmpl-a"), asked)
    stored.save(store, _completion("chatcmpl-b", "Other-Chat"), {"messages": [], "metadata": {"trip": "oslo"}})
    store.close()
    reopened = Store(tmp_path / "platform.sqlite3")
    record = stored.get(reopened, "chatcmpl-a")
    completion = record["completion"]
    assert (completion["metadata"], completion["temperature"], completion["input_user"],
            completion["service_tier"]) == ({"trip": "rome"}, 0.2, "h-1", "default")
    assert [(m["id"], m["content"], m["content_parts"]) for m in record["messages"]] == [
        ("chatcmpl-a-0", "terse", None), ("chatcmpl-a-1", "look\nhere", parts)]
    assert [c["id"] for c in stored.listed(reopened, metadata={"trip": "oslo"})["data"]] == ["chatcmpl-b"]
    assert [c["id"] for c in stored.listed(reopened, metadata={}, model="other-chat")["data"]] == ["chatcmpl-b"]
    assert stored.update(reopened, "chatcmpl-a", None)["metadata"] == {}
    assert stored.get(reopened, "chatcmpl-a")["completion"]["choices"] == completion["choices"]
    assert stored.delete(reopened, "chatcmpl-a")["deleted"] is True
    for missing in ("chatcmpl-a", "resp_1", 7):
        with pytest.raises(NotFound, match="store: true"):
            stored.get(reopened, missing)

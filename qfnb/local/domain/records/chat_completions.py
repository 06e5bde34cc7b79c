"""Stored chat completions: the OpenAI chat answers asked with ``store: true``, in the platform's
SQLite, as OpenAI's stored chat completions API keeps them.

Each record holds the ``chat.completion`` object as answered (with the request's ``metadata`` and
the settings OpenAI echoes on a stored completion) and the request's messages, each with an id
(``<completion id>-<index>``). Only ``metadata`` can be changed afterwards. Writes are committed
before the answer's last byte is sent (SQLite WAL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qfnb.local.domain.state.store import Record, Store, holds_pairs
from qfnb.local.domain.state.values import NotFound
from qfnb.protocol.wires.responses.answer import list_object

KIND = "chat_completions"
PREFIX = "chatcmpl-"
#: the request's settings a stored completion echoes (OpenAI's names), beside its answer
ECHOED = ("seed", "temperature", "top_p", "presence_penalty", "frequency_penalty", "tools", "tool_choice",
          "response_format")


def save(store: Store, completion: Mapping[str, Any], request: Mapping[str, Any]) -> Record:
    """Store an answered ``completion`` with what its ``request`` (the parsed body) asked: its
    ``metadata``, the settings OpenAI echoes, the end user (``input_user``) and its messages."""
    stored = {**completion, "metadata": dict(request.get("metadata") or {}),
              "input_user": request.get("safety_identifier") or request.get("user"),
              **{name: request.get(name) for name in ECHOED}}
    stored.setdefault("service_tier", "default")
    messages = [{**_message(m), "id": f"{completion['id']}-{i}"} for i, m in enumerate(request.get("messages") or ())]
    return store.insert(KIND, {"completion": stored, "messages": messages}, sid=str(completion["id"]))


def _message(turn: Mapping[str, Any]) -> dict[str, Any]:
    """A request turn as the stored messages list gives it: ``content`` as text, the parts in
    ``content_parts`` when it was given as parts."""
    content = turn.get("content")
    if isinstance(content, list):
        texts = [str(p["text"]) for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
        return {**turn, "content": "\n".join(texts) if texts else None, "content_parts": content}
    return {**turn, "content_parts": None}


def get(store: Store, completion_id: Any) -> Record:
    """A stored completion by id; :class:`NotFound` when there is none."""
    return store.get_or_raise(KIND, completion_id, NotFound(
        f"completion_id: no stored chat completion {completion_id!r:.80} (chat completions are kept only when "
        "created with store: true)"), PREFIX)


def listed(store: Store, *, metadata: Mapping[str, str], model: str | None = None, limit: int = 20,
           order: str = "asc", after: str | None = None) -> dict[str, Any]:
    """A page of the stored completions whose metadata holds every ``metadata`` pair (and of
    ``model``, when given), in OpenAI's list shape: read by SQL, a page at a time."""
    where, params = holds_pairs("$.completion.metadata", metadata)
    if model is not None:
        where = " AND ".join(filter(None, (where, "lower(json_extract(data, '$.completion.model')) = lower(?)")))
        params.append(model)
    records, more = store.page(KIND, limit=limit, order=order, after=after, where=where, params=params)
    return list_object([record["completion"] for record in records], more)


def update(store: Store, completion_id: str, metadata: Mapping[str, str] | None) -> dict[str, Any]:
    """Replace a stored completion's ``metadata`` (None clears it); the completion as stored now."""
    record = get(store, completion_id)
    completion = {**record["completion"], "metadata": dict(metadata or {})}
    store.update(KIND, record["id"], completion=completion)
    return completion


def delete(store: Store, completion_id: str) -> dict[str, Any]:
    """Delete a stored completion; OpenAI's deletion object."""
    record = get(store, completion_id)
    store.delete(KIND, record["id"])
    return {"id": completion_id, "object": "chat.completion.deleted", "deleted": True}

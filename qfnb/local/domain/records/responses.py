"""Stored responses: the turns of the Responses API's conversations, in the platform's SQLite.

Each stored response keeps its own input items (with ids) and its output items, and names the
response it follows (``previous_response_id``). A follow-up sends only its new input: the
platform walks the chain back and hands the engine the whole conversation. Writes are committed
before the answer is returned (SQLite WAL), so a chain outlives a SIGTERM or SIGKILL of the daemon.
"""

from __future__ import annotations

from typing import Any

from qfnb.local.domain.state.store import Record, Store, holds_pairs
from qfnb.local.domain.state.values import NotFound
from qfnb.protocol.wires.responses.answer import RESPONSE_PREFIX, list_object

KIND = "responses"
#: the longest chain the platform walks (a history that long cannot fit a local model's context anyway)
MAX_CHAIN = 10_000


def save(store: Store, response: dict[str, Any], input_items: list[dict[str, Any]], *,
         instructions: str | None = None, cache_key: str | None = None) -> Record:
    """Store a finished response (its object as answered) with the input items it was asked and the
    cache key its conversation's turns share."""
    return store.insert(KIND, {"response": response, "input_items": input_items, "instructions": instructions,
                               "cache_key": cache_key}, sid=response["id"])


def get(store: Store, response_id: Any, field: str = "response_id") -> Record:
    """A stored response by id; :class:`NotFound` naming ``field`` when there is none."""
    return store.get_or_raise(KIND, response_id, NotFound(
        f"{field}: no stored response {response_id!r:.80} (responses created with store: false are not kept)"),
        RESPONSE_PREFIX)


def history(store: Store, response_id: str) -> list[dict[str, Any]]:
    """The items of the conversation up to and including ``response_id`` (every turn's input items
    and output items, oldest first); instructions are not carried over, as OpenAI does."""
    turns: list[Record] = []
    current: str | None = response_id
    while current is not None:
        record = get(store, current, "previous_response_id")
        turns.append(record)
        if len(turns) > MAX_CHAIN:
            raise NotFound(f"previous_response_id: the conversation is longer than {MAX_CHAIN} turns")
        current = record["response"].get("previous_response_id")
    items: list[dict[str, Any]] = []
    for record in reversed(turns):
        items += record["input_items"]
        # an output item is the input item it becomes in the next turn, less its status
        items += [{k: v for k, v in item.items() if k != "status"} for item in record["response"]["output"]]
    return items


def listed(store: Store, metadata: dict[str, str], *, limit: int = 20, order: str = "desc",
           after: str | None = None) -> dict[str, Any]:
    """A page of the stored responses whose metadata holds every ``metadata`` pair, in OpenAI's
    list shape (a notebook finds its named conversations this way): read by SQL, a page at a time."""
    where, params = holds_pairs("$.response.metadata", metadata)
    records, more = store.page(KIND, limit=limit, order=order, after=after, where=where, params=params)
    return list_object([record["response"] for record in records], more)


def delete(store: Store, response_id: str) -> dict[str, Any]:
    """Delete a stored response; OpenAI's deletion object."""
    record = get(store, response_id)
    store.delete(KIND, record["id"])
    return {"id": response_id, "object": "response.deleted", "deleted": True}

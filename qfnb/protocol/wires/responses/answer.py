"""What a Responses API call answers with, as data: its ids, the output items of a turn, the
response object, the stream's events (:class:`ResponseEvents`) and stored items' list pages. Pure
(no I/O); :mod:`.request` checks the request and reads its input in chat terms."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qfnb.protocol.wires.chat.turn import Turn, new_id

#: the prefix of a response id
RESPONSE_PREFIX = "resp_"


def usage(turn: Turn) -> dict[str, Any]:
    """Responses' usage: ``cached_tokens`` are the prompt tokens the engine did not prefill again."""
    return {"input_tokens": turn.input_tokens, "input_tokens_details": {"cached_tokens": turn.cached_tokens},
            "output_tokens": turn.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": turn.input_tokens + turn.output_tokens}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def call_item(item_id: str, call: Mapping[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"type": "function_call", "id": item_id, "call_id": call.get("id") or new_id("call_"),
            "name": fn.get("name", ""), "arguments": fn.get("arguments", ""), "status": status}


def output_items(turn: Turn, ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The answer as output items: a message with its text (if any), then one item per call."""
    ids = list(ids)
    out = []
    if turn.text or not turn.tool_calls:
        out.append(message_item(ids.pop(0) if ids else new_id("msg_"), turn.text,
                                "incomplete" if turn.finish == "length" else "completed"))
    out += [call_item(ids.pop(0) if ids else new_id("fc_"), call) for call in turn.tool_calls]
    return out


def response_object(rid: str, data: Mapping[str, Any], model: str, created: int, *, status: str,
                    output: list[dict[str, Any]], turn: Turn | None = None) -> dict[str, Any]:
    """The response object as OpenAI returns it (the request's settings echoed back)."""
    incomplete = {"reason": "max_output_tokens"} if turn is not None and turn.finish == "length" else None
    tool_choice = data.get("tool_choice", "auto")
    return {"id": rid, "object": "response", "created_at": created, "status": "incomplete" if incomplete else status,
            "background": False, "error": None, "incomplete_details": incomplete,
            "instructions": data.get("instructions"), "max_output_tokens": data.get("max_output_tokens"),
            "model": model, "output": output, "parallel_tool_calls": data.get("parallel_tool_calls", True),
            "previous_response_id": data.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": data.get("store", True),
            "temperature": data.get("temperature", 1.0), "text": data.get("text") or {"format": {"type": "text"}},
            "tool_choice": tool_choice, "tools": data.get("tools", []), "top_p": data.get("top_p", 1.0),
            "truncation": "disabled", "usage": usage(turn) if turn is not None else None, "user": data.get("user"),
            "metadata": data.get("metadata", {})}


class ResponseEvents:
    """The stream of a response as OpenAI's semantic events, each an ``(event type, data)`` pair
    with its ``sequence_number``: ``response.created``, ``response.in_progress``, per output item
    ``response.output_item.added`` … ``response.output_text.delta`` (or
    ``response.function_call_arguments.delta``) … ``response.output_item.done``, then
    ``response.completed``."""

    def __init__(self, rid: str, data: Mapping[str, Any], model: str, created: int) -> None:
        self.rid, self.data, self.model, self.created = rid, data, model, created
        self.sequence = 0
        self.items: list[dict[str, Any]] = []
        self.text_item: dict[str, Any] | None = None
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its output item

    def _event(self, kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return kind, event

    def _snapshot(self, status: str, turn: Turn | None = None) -> dict[str, Any]:
        return response_object(self.rid, self.data, self.model, self.created, status=status,
                               output=[dict(i) for i in self.items], turn=turn)

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        return [self._event("response.created", response=self._snapshot("in_progress")),
                self._event("response.in_progress", response=self._snapshot("in_progress"))]

    def text(self, piece: str) -> list[tuple[str, dict[str, Any]]]:
        out = []
        if self.text_item is None:
            self.text_item = {**message_item(new_id("msg_"), "", "in_progress"), "content": []}
            self.items.append(self.text_item)
            index = len(self.items) - 1
            out.append(self._event("response.output_item.added", output_index=index, item=dict(self.text_item)))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(self._event("response.content_part.added", item_id=self.text_item["id"], output_index=index,
                                   content_index=0, part=part))
            self.text_item["content"] = [dict(part)]
        self.text_item["content"][0]["text"] += piece
        out.append(self._event("response.output_text.delta", item_id=self.text_item["id"],
                               output_index=self.items.index(self.text_item), content_index=0, delta=piece,
                               logprobs=[]))
        return out

    def tool_fragments(self, fragments: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for frag in fragments:
            index = int(frag.get("index", len(self.calls)))
            fn = frag.get("function") or {}
            item = self.calls.get(index)
            if item is None:
                item = call_item(new_id("fc_"), {"id": frag.get("id") or new_id("call_"),
                                                 "function": {"name": fn.get("name") or "", "arguments": ""}},
                                 "in_progress")
                self.calls[index] = item
                self.items.append(item)
                out.append(self._event("response.output_item.added", output_index=len(self.items) - 1,
                                       item=dict(item)))
            elif fn.get("name"):
                item["name"] += fn["name"]
            if fn.get("arguments"):
                item["arguments"] += fn["arguments"]
                out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                       output_index=self.items.index(item), delta=fn["arguments"]))
        return out

    def finish(self, turn: Turn) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """The closing events, and the final response object (what is stored)."""
        out = []
        if self.text_item is None and not self.calls:
            out += self.text("")  # an empty answer is still one message
        for index, item in enumerate(self.items):
            if item is self.text_item:
                text = item["content"][0]["text"]
                item["status"] = "incomplete" if turn.finish == "length" else "completed"
                out.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                       content_index=0, text=text, logprobs=[]))
                out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                       content_index=0, part=dict(item["content"][0])))
            else:
                item["status"] = "completed"
                out.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                       output_index=index, name=item["name"], arguments=item["arguments"]))
            out.append(self._event("response.output_item.done", output_index=index, item=json.loads(json.dumps(item))))
        final = self._snapshot("completed", turn)
        out.append(self._event("response.incomplete" if final["status"] == "incomplete" else "response.completed",
                               response=final))
        return out, final

    def failed(self, message: str) -> tuple[str, dict[str, Any]]:
        snapshot = self._snapshot("failed")
        snapshot["error"] = {"code": "server_error", "message": message}
        return self._event("response.failed", response=snapshot)


def list_page(items: Sequence[Mapping[str, Any]], *, order: str = "desc", after: str | None = None,
              limit: int = 20) -> dict[str, Any]:
    """A page of ``items`` (oldest first, each with an ``id``) in OpenAI's list shape: a response's
    ``input_items``, or the stored responses ``GET /responses`` lists."""
    ordered = list(items) if order == "asc" else list(items)[::-1]
    if after is not None:
        ids = [i.get("id") for i in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    return list_object(ordered[:limit], len(ordered) > limit)


def list_object(page: Sequence[Mapping[str, Any]], has_more: bool) -> dict[str, Any]:
    """A page (each item with an ``id``) in OpenAI's list shape."""
    return {"object": "list", "data": list(page), "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": has_more}


def with_ids(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Input items as stored: each with an ``id`` (``msg_…``, ``fc_…``, ``fco_…``) and a status."""
    prefix = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}
    return [{**item, "id": item.get("id") or new_id(prefix.get(str(item.get("type")), "item_")),
             "status": item.get("status", "completed")} for item in items]

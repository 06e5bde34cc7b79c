"""What the inference routes keep while an answer streams: usage counts, finish reasons, and
the SSE error event that ends a stream broken on the platform's side."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.sse import encode_event


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Tally:
    """Token counts and finish reason of an answer so far, kept as deltas arrive (O(1) each)."""

    __slots__ = ("completion", "finish", "pieces", "prompt")

    def __init__(self, deltas: Iterable[Any] = ()) -> None:
        self.prompt = self.completion = self.pieces = 0
        self.finish: str | None = None
        for delta in deltas:
            self.add(delta)

    def add(self, delta: Any) -> None:
        self.prompt = max(self.prompt, delta.prompt_tokens)
        self.completion = max(self.completion, delta.completion_tokens)
        self.pieces += bool(delta.text)
        self.finish = delta.finish_reason or self.finish

    def usage(self) -> dict[str, int]:
        return usage_of(self.prompt, self.completion or self.pieces)


def merge_tool_calls(calls: list[dict[str, Any]], fragments: list[dict[str, Any]]) -> None:
    """Add streamed ``tool_calls`` fragments to the calls assembled so far (by ``index``)."""
    for frag in fragments:
        i = int(frag.get("index", len(calls)))
        while len(calls) <= i:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call, fn = calls[i], frag.get("function") or {}
        call["id"] = frag.get("id") or call["id"] or f"call_{i}"
        call["function"]["name"] += fn.get("name") or ""
        call["function"]["arguments"] += fn.get("arguments") or ""


def tool_calls_of(deltas: Iterable[Any]) -> list[dict[str, Any]]:
    """The tool calls a whole answer made, assembled from its deltas."""
    calls: list[dict[str, Any]] = []
    for d in deltas:
        if getattr(d, "tool_calls", None):
            merge_tool_calls(calls, d.tool_calls)
    return calls


def v1_finish(reason: str | None) -> str:
    return "normal" if reason in (None, "", "stop", "eos") else reason


def v2_finish(reason: str | None) -> str:
    return "stop" if reason in (None, "", "normal") else reason


def stream_error_event(*, v2: bool) -> bytes:
    """An SSE ``error`` event: the answer broke off on the platform's side (the engine failed
    mid-answer); clients raise a retryable stream error. No internals: they go to the log."""
    message = "the model engine failed mid-answer; the answer is incomplete, retry the request"
    if v2:
        return encode_event({"error": {"code": "server_overloaded", "message": message, "type": "server_error"}},
                            event="error")
    return encode_event({"error_code": int(ErrorCode.SERVER_HIGH_LOAD), "error_msg": message}, event="error")

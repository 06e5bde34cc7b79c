"""``Completion``: text continuation; a chat model is driven with the prompt as one user turn."""

from __future__ import annotations

from typing import Any, ClassVar

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse
from qfnb.protocol.limits import MAX_PROMPT_CHARS

from ._generated.completion import CompletionCalls
from .base import Target
from .params import CompletionCall
from .shapes import v2 as v2_shapes

__all__ = ["Completion"]


class Completion(CompletionCalls):
    """``Completion().do(prompt="你好")``. With a chat model (the default, as in the official
    SDK) the prompt becomes ``messages=[{"role": "user", ...}]`` and the answer's ``object``
    reads ``"completion"``."""

    api_types: ClassVar[tuple[str, ...]] = ("completions", "chat")
    batch_field: ClassVar[str] = "prompt"

    def _body(self, target: Target, call: CompletionCall) -> tuple[Target, dict[str, Any]]:
        stream, kwargs = call.stream, self._given(call)
        prompt = kwargs.get("prompt")
        if prompt is None:
            raise ValidationError("prompt", "is required")
        if target.api_type in ("chat", "v2"):
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValidationError("prompt", "must be a non-empty string")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise ValidationError("prompt", f"is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted")
            rest = {k: v for k, v in kwargs.items() if k != "prompt"}
            as_chat = {**rest, "messages": [{"role": "user", "content": prompt}]}
            if target.api_type == "v2":
                return target, v2_shapes.chat_body(as_chat, target.model or "", stream)
            body = self._wire_body(as_chat, stream, "ChatRequest")
        else:
            body = self._wire_body(kwargs, stream, "CompletionRequest")
        return target, body

    def _v1_keys(self, body: dict[str, Any], *, chunk: bool) -> dict[str, Any]:
        return v2_shapes.chat_chunk(body) if chunk else v2_shapes.chat_answer(body)

    def _postprocess(self, resp: QfResponse, call: CompletionCall, target: Target) -> QfResponse:
        if target.api_type in ("chat", "v2"):
            resp.body["object"] = "completion"
        return resp

"""qfnb's own chat as the tool loop's model call: the v2 chat route (``tools`` / ``tool_calls``,
OpenAI's shape), on the cloud or the local platform as the configuration says."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from qfnb.agents.loop import Confirm, Step, StepReply, ToolLoop, run_every_call
from qfnb.agents.tools import FunctionTool
from qfnb.resources.inference.chat import ChatCompletion

__all__ = ["chat_step", "reply_of", "run_tools"]


def reply_of(body: Any) -> StepReply:
    """The :class:`StepReply` of an OpenAI-shaped chat answer body (``choices[0].message``, ``usage``)."""
    body = body if isinstance(body, dict) else {}
    choices = body.get("choices") or [{}]
    message = (choices[0] or {}).get("message") or {}
    calls = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        args = fn.get("arguments")
        calls.append((str(fn.get("name", "")), args if isinstance(args, str) else json.dumps(args or {}),
                      str(call.get("id") or "")))
    return StepReply(text=str(message.get("content") or ""), calls=tuple(calls), usage=body.get("usage"))


def chat_step(model: str | None = None, sampling: Mapping[str, Any] | None = None, **settings: Any) -> Step:
    """A step that asks ``model`` through qfnb's v2 chat, the tools as OpenAI ``tools``;
    ``sampling`` goes with each request (``temperature``, ``max_output_tokens``...) and
    ``settings`` to :class:`~qfnb.ChatCompletion` (credentials, ``config``...)."""
    resource = ChatCompletion(version=2, **settings)

    def step(messages: list[dict[str, Any]], tools: Sequence[FunctionTool]) -> StepReply:
        fields: dict[str, Any] = dict(sampling or {})
        if tools:
            fields["tools"] = [t.openai_tool() for t in tools]
        try:
            resp = resource.do(model=model, messages=messages, **fields)
        except Exception as exc:  # the loop ends with it; the caller reads loop.reply.error
            return StepReply(error=exc)
        return reply_of(resp.body)

    return step


def run_tools(prompt: str | list[dict[str, Any]], tools: Iterable[Callable[..., Any] | FunctionTool], *,
              model: str | None = None, confirm: Confirm = run_every_call, max_steps: int = 6,
              sampling: Mapping[str, Any] | None = None, step: Step | None = None, **settings: Any) -> ToolLoop:
    """Ask ``prompt`` with ``tools`` (Python functions or :class:`FunctionTool`s, MCP tools
    included) until the model answers or ``max_steps`` model calls; ``confirm`` decides each call
    (default: run it); ``sampling`` goes with each request. The loop is returned: ``.answer``,
    ``.calls``, ``.usage``, ``.stopped``."""
    offered = [t if isinstance(t, FunctionTool) else FunctionTool.from_function(t) for t in tools]
    by_name = {t.name: t for t in offered}
    if len(by_name) != len(offered):
        raise ValueError("two tools have the same name: " + ", ".join(t.name for t in offered))
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    loop = ToolLoop(step or chat_step(model, sampling, **settings), by_name, messages, max_steps=max_steps)
    loop.advance(confirm)
    return loop

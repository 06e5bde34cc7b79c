"""Function calling on ``ERNIE-Functions-8K`` (for :class:`Function` and for
``ChatCompletion`` called with that model and ``functions=``).

That model is driven by instructions, not by a ``functions`` body field: the functions are
described in the first user turn, and the model answers ``Action: <name>`` and
``Action Input: <json arguments>`` when it wants a call, which comes back as the answer's
``function_call`` (as the official SDK does). Earlier ``function_call`` turns are replayed in
that form and ``function`` results are sent as user turns.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from qfnb._core.http.response import QfResponse

from ..messages import Messages
from ..params import ChatCall

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answers import ChatAnswer, ChatChunk

#: a chat response or chunk
R = TypeVar("R", bound=QfResponse[Any])

__all__ = ["FUNCTION_ENDPOINT", "FUNCTION_MODEL", "acall", "parse_call", "render"]

#: the official SDK's default model for :class:`Function`, and its endpoint
FUNCTION_MODEL = "ERNIE-Functions-8K"
FUNCTION_ENDPOINT = "ernie-func-8k"
_ACTION = re.compile(r"Action: (\w+)")
_ACTION_INPUT = re.compile(r"Action Input: (.+)")
_INSTRUCTIONS = """在接下来的对话中，你可以调用下面列出的外部工具来回答问题。
每个工具有名称、描述和参数（参数是标准的 JSON Schema）。
调用工具后，下一轮对话会给你工具的返回结果，你再据此决定继续调用工具还是直接回答。

工具列表：
{functions}

需要调用工具时，只输出下面两行，不要输出别的内容：
Action: 工具名称
Action Input: JSON 格式的调用参数

不需要调用工具时，不要输出 Action 和 Action Input，直接回答。
问题：{query}"""
_FUNCTION = "名称：{name}\n描述：{description}\n参数：{parameters}\n"


def render(messages: list[dict[str, Any]], functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns sent for ``messages`` when ``functions`` are offered."""
    described = "\n-".join(_FUNCTION.format(name=f.get("name"), description=f.get("description"),
                                            parameters=json.dumps(f.get("parameters", {}), ensure_ascii=False))
                           for f in functions)
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        msg = dict(msg)
        if i == 0:
            msg = {"role": "user", "content": _INSTRUCTIONS.format(functions=described, query=msg.get("content", ""))}
        elif msg.get("role") == "function":
            msg = {"role": "user", "content": msg.get("content", "")}
        elif msg.get("role") == "assistant" and msg.get("function_call"):
            call = msg.pop("function_call")
            msg["content"] = f"Action: {call.get('name')}\nAction Input: {call.get('arguments')}"
        out.append(msg)
    return out


def parse_call(resp: R, text: str) -> R:
    """Put an ``Action``/``Action Input`` answer into ``resp["function_call"]``."""
    action, args = _ACTION.search(text), _ACTION_INPUT.search(text)
    if action and args:
        resp.body["function_call"] = {"name": action.group(1), "arguments": args.group(1)}
        resp.body["result"] = ""
    return resp


async def _stream_call(chunks: AsyncIterator[QfResponse[ChatChunk]]) -> AsyncIterator[QfResponse[ChatChunk]]:
    """Pass an ordinary answer through as it streams; hold back one that starts ``Action:``
    and end with a single chunk carrying the ``function_call``."""
    text, last, calling = "", None, None
    async for chunk in chunks:
        last = chunk
        if calling is False:
            yield chunk
            continue
        text += str(chunk.body.get("result", ""))
        if _ACTION.search(text):
            calling = True
        elif len(text) > len("Action: ") and calling is None:
            calling = False
            chunk.body["result"] = text
            yield chunk
    if last is not None and calling is not False:  # a call, or an answer too short to have been decided
        if calling is None:
            last.body["result"] = text
        yield parse_call(last, text)


async def acall(send: Callable[[ChatCall], Awaitable[QfResponse[ChatAnswer] | AsyncIterator[QfResponse[ChatChunk]]]],
                call: ChatCall) -> QfResponse[ChatAnswer] | AsyncIterator[QfResponse[ChatChunk]]:
    """Run ``send`` (a chat call) on ``call`` with its ``functions`` (in ``call.extra``) rendered
    into the turns, and the answer's ``Action`` lines turned into ``function_call``."""
    extra = dict(call.extra)
    functions = extra.pop("functions")
    messages = call.messages
    turns = messages.to_list() if isinstance(messages, Messages) else [dict(m) for m in messages]
    resp = await send(dataclasses.replace(call, messages=render(turns, functions), extra=extra))
    if isinstance(resp, QfResponse):
        return parse_call(resp, str(resp.body.get("result", "")))
    return _stream_call(resp)

"""Tool calls on our own ``llama-server``, decided by the platform.

The prompt is the model's own chat template rendered with the tools (``/apply-template``). A
call the request requires (``tool_choice`` ``required`` or a named function) is generated under a
JSON schema of the offered calls, after the template's own call opener (``<tool_call>`` for
Qwen/Hermes templates), so it always parses. With ``auto`` the model answers freely and an
answer that is a call of an offered tool (in ``<tool_call>`` tags, a fenced JSON block or bare
JSON, as small models write them) becomes ``tool_calls``; anything else stays text.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from qfnb.local.engines.base import FINISH_TOOL_CALLS, Delta

#: the call opener of Hermes-style templates (Qwen 2.5 and many others)
HERMES_OPEN = "<tool_call>"
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
#: how an answer that may be a call starts (it is held back until it can be told apart)
_CALL_STARTS = ("<tool_call>", "{", "[", "```")


def call_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one call of any of ``tools``: ``{"name": <const>, "arguments": <its parameters>}``."""
    options = []
    for tool in tools:
        fn = tool["function"]
        options.append({"type": "object", "properties": {
            "name": {"const": fn["name"]},
            "arguments": fn.get("parameters") or {"type": "object"}}, "required": ["name", "arguments"]})
    return options[0] if len(options) == 1 else {"anyOf": options}


def call_prefix(rendered: str) -> str:
    """What the template opens a call with (appended to a prompt whose call is required)."""
    return HERMES_OPEN + "\n" if HERMES_OPEN in rendered else ""


def parse_calls(text: str, names: Sequence[str]) -> list[dict[str, Any]] | None:
    """The calls ``text`` makes of the tools called ``names`` (OpenAI ``tool_calls``), or None
    when it is not (only) such calls."""
    stripped = text.strip()
    tagged = _TAGGED.findall(stripped)
    if tagged:
        bodies = tagged
    else:
        fenced = _FENCED.match(stripped)
        bodies = [fenced.group(1) if fenced else stripped]
    objects: list[Any] = []
    for body in bodies:
        try:
            value = json.loads(body)
        except ValueError:
            return None
        objects += value if isinstance(value, list) else [value]
    calls = []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict) or obj.get("name") not in names:
            return None
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                return None
        if not isinstance(args, dict):
            return None
        calls.append({"index": i, "id": "call_" + secrets.token_hex(8), "type": "function",
                      "function": {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)}})
    return calls or None


async def as_tool_calls(deltas: AsyncIterator[Delta], names: Sequence[str], *, prefix: str = "",
                        forced: bool = False) -> AsyncIterator[Delta]:
    """``deltas`` with an answer that calls tools turned into one ``tool_calls`` delta. Text that
    cannot be a call streams as it comes; text that may be one is held until the answer ends."""
    held: list[Delta] = []
    deciding = True
    async for delta in deltas:
        if delta.finish_reason is not None:
            held.append(delta)
            break
        if not deciding:
            yield delta
            continue
        held.append(delta)
        start = "".join(d.text for d in held).lstrip()
        if forced or not start or any(s.startswith(start[:len(s)]) or start.startswith(s) for s in _CALL_STARTS):
            continue
        deciding = False
        for d in held:
            yield d
        held = []
    if not held:
        return
    last = held[-1]
    calls = parse_calls(prefix + "".join(d.text for d in held), names)
    if calls is None:
        for d in held:
            yield d
        return
    logprobs = [entry for d in held for entry in d.logprobs or ()]  # the call's tokens' (logprobs=True)
    yield Delta("", None, last.prompt_tokens, last.completion_tokens, tool_calls=calls, logprobs=logprobs or None)
    yield Delta("", FINISH_TOOL_CALLS, last.prompt_tokens, last.completion_tokens)

"""Tool calls on our own ``llama-server``, decided by the platform.

The prompt is the model's own chat template rendered with the tools (``/apply-template``). A
call the request requires (``tool_choice`` ``required`` or a named function) is generated under a
JSON schema of the offered calls, after the template's own call opener (``<tool_call>`` for
Qwen/Hermes templates), so it always parses. With ``auto`` the model answers freely and an
answer that is a call of an offered tool (in ``<tool_call>`` tags, a fenced JSON block or bare
JSON, one call or several one after another, as small models write them) becomes ``tool_calls``;
anything else stays text.
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
    objects = _call_objects(text)
    if objects is None:
        return None
    calls: list[dict[str, Any]] = []
    for obj in objects:
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
        fn = {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)}
        if any(c["function"] == fn for c in calls):
            continue  # the same call written again is one call
        calls.append({"index": len(calls), "id": "call_" + secrets.token_hex(8), "type": "function", "function": fn})
    return calls or None


def _call_objects(text: str) -> list[Any] | None:
    """The JSON values an answer holds: in ``<tool_call>`` tags, a fenced block or bare (lists
    flattened); None when it holds anything else."""
    stripped = text.strip()
    tagged = _TAGGED.findall(stripped)
    if tagged:
        bodies = tagged
    else:
        fenced = _FENCED.match(stripped)
        bodies = [fenced.group(1) if fenced else stripped]
    objects: list[Any] = []
    for body in bodies:
        values = _json_values(body)
        if values is None:
            return None
        for value in values:
            objects += value if isinstance(value, list) else [value]
    return objects


def _json_values(text: str) -> list[Any] | None:
    """The JSON values ``text`` holds one after another (a small model writes a call per line, or
    the same call several times); None when anything else is in it."""
    decoder, at = json.JSONDecoder(), 0
    values: list[Any] = []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return values or None
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError:
            return None
        values.append(value)


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

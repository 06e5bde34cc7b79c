"""Tool calls on our own ``llama-server``, decided by the platform.

The prompt is the model's own chat template rendered with the tools (``/apply-template``). A
call the request requires (``tool_choice`` ``required`` or a named function) is generated under a
JSON schema of the offered calls, after the template's own call opener (``<tool_call>`` for
Qwen/Hermes templates), so it always parses. With ``auto`` the model answers freely and an
answer that is a call of an offered tool (in ``<tool_call>`` tags, a fenced JSON block, with or
without prose after it, or bare JSON, one call or several one after another, as small models write
them) becomes ``tool_calls``;
anything else stays text. A call of a ``strict`` tool made that way whose arguments do not validate
is written again under that tool's grammar, so no strict call leaves unenforced.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from qfnb.local.engines.base import FINISH_NORMAL, FINISH_TOOL_CALLS, Delta, aclose
from qfnb.local.engines.llama import answer_check

log = logging.getLogger("qfnb.local.engines")

#: the call opener of Hermes-style templates (Qwen 2.5 and many others)
HERMES_OPEN = "<tool_call>"
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
#: a fenced block that opens an answer, prose after it: the 1.5B model at temperature 0.8 wrote its
#: call so ("... use the following function call:" then the block, then "This will return the
#: syllabus..."), and openai-agents took it for the final answer (bench/syllabus_agents.py)
_FENCED_FIRST = re.compile(r"^```(?:json)?\s*(.*?)\s*```(?=\s)", re.S)
#: a fence opened or closed but not both (the 0.5B model ends a bare call with a lone "```")
_STRAY_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
#: how an answer that may be a call starts (it is held back until it can be told apart)
_CALL_STARTS = ("<tool_call>", "{", "[", "```")
#: the longest first line held back as a possible preamble before a call
PREAMBLE_CHARS = 160
#: a one-line sentence the 0.5B model writes before a call, ending in a colon ("Here's a JSON
#: response for the `get_weather` function call: {...}"); a call after it is still a call
_PREAMBLE = re.compile(rf"[^\n{{<]{{1,{PREAMBLE_CHARS}}}?:\s*(?=<tool_call>|\{{|\[|```)")


def call_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one call of any of ``tools``: ``{"name": <const>, "arguments": <its parameters>}``
    (a ``$ref`` inside the parameters rewritten to where they now sit)."""
    options = []
    for i, tool in enumerate(tools):
        fn = tool["function"]
        at = "#/properties/arguments" if len(tools) == 1 else f"#/anyOf/{i}/properties/arguments"
        options.append({"type": "object", "properties": {
            "name": {"const": fn["name"]},
            "arguments": _moved_refs(fn.get("parameters") or {"type": "object"}, at)},
            "required": ["name", "arguments"]})
    return options[0] if len(options) == 1 else {"anyOf": options}


def _moved_refs(schema: Any, at: str) -> Any:
    """``schema`` with each ``{"$ref": "#/..."}`` pointing under ``at`` (its new place in a bigger schema)."""
    if isinstance(schema, list):
        return [_moved_refs(s, at) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: (at + v[1:] if k == "$ref" and isinstance(v, str) and v.startswith("#") else _moved_refs(v, at))
            for k, v in schema.items()}


def strict_tools(tools: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """The parameters schema of each tool offered with ``strict: true``, by name."""
    return {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"}
            for t in tools or () if t["function"].get("strict")}


async def enforce_strict(deltas: AsyncIterator[Delta], schemas: Mapping[str, Any],
                         forced: Callable[[str], AsyncIterator[Delta]]) -> AsyncIterator[Delta]:
    """``deltas`` (an answer whose calls were not grammar-constrained: ``tool_choice`` auto) with
    every call of a strict tool whose arguments do not validate written again under the tool's
    grammar (``forced(name)``: a required call of that one tool). The usage counts both
    generations; a call the forced answer cannot give (cut by the token cap) ends the answer
    with the forced answer's own deltas."""
    spent = (0, 0)
    async for delta in deltas:
        if delta.tool_calls is None:
            yield delta.after(*spent)
            continue
        calls: list[dict[str, Any]] = []
        for call in delta.tool_calls:
            name = call["function"]["name"]
            check = functools.partial(answer_check.text_miss, schema=schemas[name]) if name in schemas else None
            if check is None or await answer_check.off_loop(check, call["function"]["arguments"]) is None:
                calls.append(call)
                continue
            log.info("a call of strict tool %s did not fit its schema; writing it again under its grammar", name)
            base = (delta.prompt_tokens + spent[0], delta.completion_tokens + spent[1])
            again = [d async for d in forced(name)]
            redone = next((d.tool_calls[0] for d in again if d.tool_calls), None)
            if redone is None:
                await aclose(deltas)
                for d in again:
                    yield d.after(*base)
                return
            spent = (spent[0] + again[-1].prompt_tokens, spent[1] + again[-1].completion_tokens)
            calls.append({**call, "function": redone["function"]})
        yield replace(delta, tool_calls=calls, logprobs=None if spent != (0, 0) else delta.logprobs).after(*spent)


def calls_unoffered(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` is only calls (``{"name": ..., "arguments": ...}``), none of an offered tool:
    the 1.5B model wrote ``{"name": "get_office_hours", "arguments": {"day": "Wednesday"}}`` with
    only ``search_syllabus`` offered, and the agent took it for the final answer
    (bench/syllabus_agents.py)."""
    objects = _call_objects(after_preamble(text))
    return bool(objects) and all(
        isinstance(o, dict) and isinstance(o.get("name"), str) and o["name"] not in names
        and isinstance(o.get("arguments", o.get("parameters")), dict) for o in objects or ())


async def call_offered(deltas: AsyncIterator[Delta], names: Sequence[str],
                       forced: Callable[[], AsyncIterator[Delta]]) -> AsyncIterator[Delta]:
    """``deltas`` (an answer whose calls were decided by :func:`as_tool_calls`), unless its text is
    only calls of tools not offered (:func:`calls_unoffered`): the model meant to call, so the call
    is written again under the offered tools' grammar (``forced()``, a required call). Text that
    cannot be a call streams as it comes; the usage counts both generations."""
    held: list[Delta] = []
    deciding = True
    async for delta in deltas:
        if not deciding:
            yield delta
            continue
        held.append(delta)
        text = "".join(d.text for d in held)
        if delta.tool_calls is None and (delta.finish_reason is not None or not text.strip() or _may_be_call(text)):
            continue
        deciding = False  # a call of an offered tool, or text that cannot be a call: as it comes
        for d in held:
            yield d
        held = []
    if not held or not calls_unoffered("".join(d.text for d in held), names):
        for d in held:
            yield d
        return
    log.info("the answer called tools not offered; writing the call again under the offered tools' grammar")
    spent = held[-1]
    async for delta in forced():
        yield delta.after(spent.prompt_tokens, spent.completion_tokens)


#: the call format as some Qwen2.5 GGUFs' templates render it, braces doubled by a transcription
#: slip (Qwen2.5-Coder-1.5B-Instruct on PyPI): the model then writes ``{{"name": ...}}``, which is
#: no call; with the braces single its tool runs went from 0 to 5 of 5 (bench/agents_finish.py)
_DOUBLED_FORMAT = '{{"name": <function-name>, "arguments": <args-json-object>}}'


def fix_rendered(prompt: str) -> str:
    """A rendered prompt with the template's call format as the model's makers wrote it."""
    return prompt.replace(_DOUBLED_FORMAT, _DOUBLED_FORMAT[1:-1]) if _DOUBLED_FORMAT in prompt else prompt


def call_prefix(rendered: str) -> str:
    """What the template opens a call with (appended to a prompt whose call is required)."""
    return HERMES_OPEN + "\n" if HERMES_OPEN in rendered else ""


async def whole_calls(deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """``deltas`` from an engine that parses calls itself (llama-server's chat endpoint streams each
    call as fragments: its name, then pieces of its arguments) with those fragments joined into one
    ``tool_calls`` delta of whole calls, just before the last delta; text streams as it comes."""
    calls: list[dict[str, Any]] = []
    last: Delta | None = None
    logprobs: list[dict[str, Any]] = []
    async for delta in deltas:
        if delta.tool_calls is None:
            if delta.finish_reason is not None and calls:
                last = delta
                break
            yield delta
            continue
        for fragment in delta.tool_calls:
            at = int(fragment.get("index", len(calls)))
            while len(calls) <= at:
                calls.append({"index": len(calls), "id": "", "type": "function",
                              "function": {"name": "", "arguments": ""}})
            call, fn = calls[at], fragment.get("function") or {}
            call["id"] = fragment.get("id") or call["id"]
            call["function"]["name"] += fn.get("name") or ""
            call["function"]["arguments"] += fn.get("arguments") or ""
        logprobs += delta.logprobs or ()
        if delta.text:
            yield replace(delta, tool_calls=None, logprobs=None)
        last = delta
    if calls and last is not None:
        for call in calls:
            call["id"] = call["id"] or "call_" + secrets.token_hex(8)
        yield Delta("", None, last.prompt_tokens, last.completion_tokens, tool_calls=calls, logprobs=logprobs or None)
        yield replace(last, text="", tool_calls=None, logprobs=None,
                      finish_reason=last.finish_reason or FINISH_TOOL_CALLS)


def parse_calls(text: str, names: Sequence[str]) -> list[dict[str, Any]] | None:
    """The calls ``text`` makes of the tools called ``names`` (OpenAI ``tool_calls``), or None
    when it is not (only) such calls."""
    objects = _call_objects(text)
    if objects is None and after_preamble(text) != text:
        objects = _call_objects(after_preamble(text))
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
        fenced = _FENCED.match(stripped) or _FENCED_FIRST.match(stripped)
        bodies = [fenced.group(1) if fenced else _STRAY_FENCE.sub("", stripped)]
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


def _opens_call(start: str) -> bool:
    return any(s.startswith(start[:len(s)]) or start.startswith(s) for s in _CALL_STARTS)


def _may_be_call(text: str) -> bool:
    """Whether an answer starting with ``text`` may still turn out to be a call: it opens like
    one, or it is a first line that may be a preamble before one (see :data:`_PREAMBLE`)."""
    start = text.lstrip()
    if not start or _opens_call(start) or _PREAMBLE.match(start):
        return True
    return "\n" not in start and len(start) <= PREAMBLE_CHARS and ":" not in start.rstrip()[:-1]


def after_preamble(text: str) -> str:
    """``text`` without a one-line preamble before a call ("Here's the response: {...}")."""
    found = _PREAMBLE.match(text.lstrip())
    return text.lstrip()[found.end():] if found else text


def written_twice(text: str) -> str | None:
    """``text`` up to the end of a JSON value written twice in a row (a small model writes the
    same call over and over until the token cap), or None when it has no such repeat."""
    decoder, at, previous = json.JSONDecoder(), 0, None
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError:
            return None
        if previous is not None and value == previous:
            return text[:at]
        previous = value


async def as_tool_calls(deltas: AsyncIterator[Delta], names: Sequence[str], *, prefix: str = "",
                        forced: bool = False) -> AsyncIterator[Delta]:
    """``deltas`` with an answer that calls tools turned into one ``tool_calls`` delta. Text that
    cannot be a call streams as it comes; text that may be one is held until the answer ends."""
    held: list[Delta] = []
    deciding, cut = True, None
    async for delta in deltas:
        if delta.finish_reason is not None:
            held.append(delta)
            break
        if not deciding:
            yield delta
            continue
        held.append(delta)
        start = "".join(d.text for d in held).lstrip()
        if forced or _may_be_call(start):
            cut = None if forced else written_twice(after_preamble(prefix + start))
            if cut is not None:  # the same call again and again until the token cap: stop it here
                await aclose(deltas)
                held.append(Delta("", FINISH_NORMAL, delta.prompt_tokens, delta.completion_tokens))
                break
            continue
        deciding = False
        for d in held:
            yield d
        held = []
    if not held:
        return
    last = held[-1]
    calls = parse_calls(cut if cut is not None else prefix + "".join(d.text for d in held), names)
    if calls is None:
        for d in held:
            yield d
        return
    logprobs = [entry for d in held for entry in d.logprobs or ()]  # the call's tokens' (logprobs=True)
    yield Delta("", None, last.prompt_tokens, last.completion_tokens, tool_calls=calls, logprobs=logprobs or None)
    yield Delta("", FINISH_TOOL_CALLS, last.prompt_tokens, last.completion_tokens)


#: what the platform adds to the last tool result when a model asks again for a call it already
#: has the result of (measured in bench/agents_finish.py: the 0.5B and 1.5B Qwen models repeat the
#: call after every result; with the tools withheld and this ask in the result turn both answered
#: from the result in 5 of 5)
AFTER_RESULT_ASK = "Answer my question from this result, in one plain sentence."


#: what the platform adds to each run of tool results while tools are still offered: without it the
#: 1.5B tool model, handed a search result that held the answer, searched again for other words of
#: that result and answered from the last one (bench/syllabus_agents.py)
RESULT_HINT = ("If these results answer my question, answer it now from them, in plain text; call a tool "
               "again only for what they do not say.")


def with_result_hints(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with :data:`RESULT_HINT` after the last result of each run of ``tool`` turns
    (each run the same in every later request, so the engine's cached prefix still holds)."""
    out = [dict(m) for m in messages]
    for i, message in enumerate(out):
        if message.get("role") == "tool" and (i + 1 == len(out) or out[i + 1].get("role") != "tool"):
            content = message.get("content")
            message["content"] = ([*content, {"type": "text", "text": RESULT_HINT}] if isinstance(content, list)
                                  else f"{content or ''}\n\n{RESULT_HINT}")
    return out


def _call_key(name: Any, arguments: Any) -> tuple[str, str]:
    args = arguments
    with contextlib.suppress(ValueError):
        args = json.loads(arguments) if isinstance(arguments, str) else arguments
    return str(name), json.dumps(args, sort_keys=True, ensure_ascii=False)


def answered_calls(messages: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The calls (name, arguments) of ``messages`` that a ``tool`` turn already answered."""
    results = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    return {_call_key((c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
            for m in messages for c in m.get("tool_calls") or () if c.get("id") in results}


def follows_result(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the turn to answer comes right after a tool result."""
    return bool(messages) and messages[-1].get("role") == "tool"


def closing_turn(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with :data:`AFTER_RESULT_ASK` inside the last tool result."""
    out = [dict(m) for m in messages]
    out[-1]["content"] = f"{out[-1].get('content') or ''}\n\n{AFTER_RESULT_ASK}"
    return out


def _no_answer(text: str) -> bool:
    """Whether ``text``, an answer right after a tool result left as text, is no answer from it: it
    opens with calls written out (``{"name": ..., "arguments": {...}}``, any tool's, whatever follows
    them: a small model writes its schema or more calls after them), whether it repeats a call the
    conversation has the result of or was not taken for a call (a tool not offered, or one written
    as the answer). The 1.5B model answered openai-agents' currency question with ``{"name":
    "convert_currency", ...}`` and pydantic-ai's with a call of a tool not offered, which had been
    written again as a required call of an offered one (bench/syllabus_agents.py)."""
    stripped = _TAGGED.sub(lambda m: m.group(1), after_preamble(text).strip())
    fenced = _FENCED.match(stripped)
    body = (fenced.group(1) if fenced else stripped).lstrip()
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return False
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, dict) and isinstance(v.get("name"), str)
                                and isinstance(v.get("arguments", v.get("parameters", {})), dict) for v in values)


async def answer_after_result(first: AsyncIterator[Delta], messages: Sequence[Mapping[str, Any]],
                              again: Callable[[list[dict[str, Any]]], AsyncIterator[Delta]]) -> AsyncIterator[Delta]:
    """``first`` (an answer right after a tool result), unless it repeats a call the conversation
    already has the result of (as ``tool_calls``) or is text that opens with a call written out
    (:func:`_no_answer`): then the answer is asked ``again`` with no tools offered and
    :data:`AFTER_RESULT_ASK` in the result turn. A new call of an offered tool stands; text that
    cannot be a call streams as it comes; the usage counts both generations."""
    answered, spent = answered_calls(messages), None
    held: list[Delta] = []
    async for delta in first:
        if delta.tool_calls is not None:
            if all(_call_key(c["function"]["name"], c["function"]["arguments"]) in answered for c in delta.tool_calls):
                spent = delta
                break
        elif held or (delta.text.strip() and _may_be_call(delta.text)):
            held.append(delta)  # text that may be a call written out: decided when it ends
            if delta.finish_reason is None:
                continue
            if _no_answer("".join(d.text for d in held)):
                spent = delta
                break
            for d in held:
                yield d
            held = []
            continue
        yield delta
    if spent is None:
        return
    await aclose(first)
    async for delta in again(closing_turn(messages)):
        yield delta.after(spent.prompt_tokens, spent.completion_tokens)

"""OpenAI's fine-tuning data formats, checked line by line (pure; the local platform's
``files.create(purpose="fine-tune")`` and ``fine_tuning.jobs.create`` apply them).

Three shapes, one per line of a JSONL file, every line of a file in the same one:

- ``chat`` (``method: supervised``): ``{"messages": [{"role": "system"|"user"|"assistant", "content"}, ...]}``
  with at least one assistant message; an assistant message with ``"weight": 0`` is not trained on.
- ``preference`` (``method: dpo``): ``{"input": {"messages": [...]}, "preferred_output": [{"role":
  "assistant", "content"}], "non_preferred_output": [...]}``.
- ``prompts`` (``method: reinforcement``): ``{"messages": [...]}`` ending with a user message, any other
  top-level fields kept for the grader (``{{item.<field>}}``).

A problem is a :class:`FormatProblem` naming the line and the field (``line 3: messages[1].role ...``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from qfnb.protocol.bounded_jsonl import LineProblem, loads_line

__all__ = ["CHAT", "FORMATS", "PREFERENCE", "PROMPTS", "FileShape", "FormatProblem", "inspect_lines", "sft_rows"]

CHAT, PREFERENCE, PROMPTS = "chat", "preference", "prompts"
#: each format and the ``method.type`` that trains on it
FORMATS = {CHAT: "supervised", PREFERENCE: "dpo", PROMPTS: "reinforcement"}
ROLES = ("system", "developer", "user", "assistant")


class FormatProblem(ValueError):
    """A line of a fine-tuning file that is not in the format; ``field`` names where."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(f"line {line}: {field} {message}" if field else f"line {line}: {message}")
        self.line, self.field = line, field


@dataclass(frozen=True)
class FileShape:
    """What a fine-tuning file holds: its format and how many examples."""

    format: str
    examples: int

    @property
    def method(self) -> str:
        return FORMATS[self.format]


def _text(value: Any, line: int, field: str) -> str:
    """A message's content: a string, or OpenAI's list of ``{"type": "text", "text"}`` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise FormatProblem(line, field, "must be a string or a list of {\"type\": \"text\", \"text\": ...} parts "
                        f"(images and audio are not trained on here), got {json.dumps(value)[:60]}")


def _messages(value: Any, line: int, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise FormatProblem(line, field, "must be a non-empty list of messages")
    out = []
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            raise FormatProblem(line, where, "must be an object {role, content}")
        role = msg.get("role")
        if role not in ROLES:
            hint = " (tool calls are not trained on by the local platform)" if role in ("tool", "function") else ""
            raise FormatProblem(line, f"{where}.role", f"must be one of {', '.join(ROLES)}, got {role!r:.40}{hint}")
        if msg.get("tool_calls") or msg.get("function_call"):
            raise FormatProblem(line, f"{where}.tool_calls", "is not trained on by the local platform; give the "
                                "assistant's answer as text content")
        text = _text(msg.get("content"), line, f"{where}.content")
        weight = msg.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            raise FormatProblem(line, f"{where}.weight", f"must be 0 or 1, got {weight!r:.20}")
        out.append({"role": "system" if role == "developer" else role, "content": text, "weight": weight})
    return out


def _answer(value: Any, line: int, field: str) -> str:
    """``preferred_output`` / ``non_preferred_output``: one assistant message."""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise FormatProblem(line, field, "must be a list holding one assistant message")
    if value[0].get("role") != "assistant":
        raise FormatProblem(line, f"{field}[0].role", f"must be 'assistant', got {value[0].get('role')!r:.40}")
    text = _text(value[0].get("content"), line, f"{field}[0].content")
    if not text.strip():
        raise FormatProblem(line, f"{field}[0].content", "is empty")
    return text


def _preference(item: dict[str, Any], line: int) -> dict[str, Any]:
    for key in ("input", "preferred_output", "non_preferred_output"):
        if key not in item:
            raise FormatProblem(line, key, "is required in the preference format (input, preferred_output, "
                                "non_preferred_output)")
    if not isinstance(item["input"], dict):
        raise FormatProblem(line, "input", "must be an object {\"messages\": [...]}")
    messages = _messages(item["input"].get("messages"), line, "input.messages")
    if messages[-1]["role"] != "user":
        raise FormatProblem(line, f"input.messages[{len(messages) - 1}].role", "must be 'user': the preferred "
                            "and non-preferred outputs answer the last user message")
    return {"messages": messages, "chosen": _answer(item["preferred_output"], line, "preferred_output"),
            "rejected": _answer(item["non_preferred_output"], line, "non_preferred_output")}


def _chat(messages: list[dict[str, Any]], line: int) -> None:
    trained = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m["weight"]]
    if not trained:
        raise FormatProblem(line, "messages", "has every assistant message at weight 0: nothing to train on")
    for i in trained:
        if not messages[i]["content"].strip():
            raise FormatProblem(line, f"messages[{i}].content", "is empty")


#: what a line in Qianfan's own training format (``[{"prompt", "response"}]``, ``{"prompt", "chosen", ...}``) is told
QIANFAN_HINT = ("looks like Qianfan's prompt/response data, not an OpenAI fine-tuning line: the chat format is "
                "{\"messages\": [{\"role\": \"user\", \"content\": ...}, {\"role\": \"assistant\", \"content\": ...}]} "
                "(Qianfan's format trains with qfnb's LLMFinetune and a Dataset)")


def _qianfan(item: Any) -> bool:
    """A Qianfan record: a prompt with its response, chosen or rejected answer, alone or as a list of turns."""
    last = item[-1] if isinstance(item, list) and item and all(isinstance(t, dict) for t in item) else item
    return (isinstance(last, dict) and "messages" not in last and "input" not in last
            and bool({"prompt", "user"} & set(last)) and bool({"response", "chosen", "rejected"} & set(last)))


def _shape(item: Any, line: int) -> tuple[str, dict[str, Any]]:
    """One line's format and its parts."""
    if _qianfan(item):
        raise FormatProblem(line, "", QIANFAN_HINT)
    if not isinstance(item, dict):
        raise FormatProblem(line, "", f"must be a JSON object, got {type(item).__name__}")
    if "input" in item or "preferred_output" in item or "non_preferred_output" in item:
        return PREFERENCE, _preference(item, line)
    if "messages" not in item:
        raise FormatProblem(line, "messages", "is required (the chat format: {\"messages\": [...]}; the preference "
                            "format: {\"input\", \"preferred_output\", \"non_preferred_output\"})")
    messages = _messages(item["messages"], line, "messages")
    if not any(m["role"] == "user" for m in messages):
        raise FormatProblem(line, "messages", "holds no user message")
    if any(m["role"] == "assistant" for m in messages):
        _chat(messages, line)
        return CHAT, {"messages": messages}
    if messages[-1]["role"] != "user":
        raise FormatProblem(line, f"messages[{len(messages) - 1}].role", "must be 'user' in a prompt line")
    return PROMPTS, {"messages": messages, "item": {k: v for k, v in item.items() if k != "messages"}}


def parsed_lines(lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(line number, format, parts)`` of each non-blank line (its end of line aside), parsed under
    :mod:`qfnb.protocol.bounded_jsonl`'s bounds; FormatProblem at the first bad one, or at a line whose format
    differs from the first line's."""
    first: str | None = None
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            item = loads_line(raw.rstrip("\r\n"), n)
        except LineProblem as exc:
            raise FormatProblem(n, "", exc.message) from None
        kind, parts = _shape(item, n)
        if first is None:
            first = kind
        elif kind != first:
            raise FormatProblem(n, "", f"is in the {kind} format but the file's first example is in the {first} "
                                "format; a file holds one format")
        yield n, kind, parts


def inspect_lines(lines: Iterable[str]) -> FileShape:
    """The file's :class:`FileShape`; FormatProblem for the first bad line or an empty file."""
    kinds = [kind for _, kind, _ in parsed_lines(lines)]
    if not kinds:
        raise FormatProblem(1, "", "the file holds no examples")
    return FileShape(kinds[0], len(kinds))


def sft_rows(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """A checked ``chat`` file as the platform's SFT rows, one line's at a time: each trained assistant message as
    ``{prompt, response, system?}``, its prompt the user message before it (earlier turns are not
    carried: the platform's SFT rows are single-turn). The other formats go to the train modes as
    they are (:mod:`qfnb.protocol.console.train_formats` reads OpenAI's preference and prompt lines)."""
    for _, kind, parts in parsed_lines(lines):
        if kind != CHAT:
            raise FormatProblem(1, "", f"is in the {kind} format, not the chat format supervised jobs train on")
        system = "\n".join(m["content"] for m in parts["messages"] if m["role"] == "system")
        user = ""
        for m in parts["messages"]:
            if m["role"] == "user":
                user = m["content"]
            elif m["role"] == "assistant" and m["weight"] and user:
                yield {"prompt": user, "response": m["content"], **({"system": system} if system else {})}

"""Training data for each train mode: parsed, checked and recognised in one pure module, for the client
(before anything is uploaded) and the embedded platform (before a run starts).

Each mode's data, one JSON value per line, is its row's ``data`` in
:data:`~qfnb.protocol.console.train_modes.MODE_TABLE`; besides those, DPO reads Qianfan's sorted responses
(first against last) and TRL's ``{"prompt", "chosen", "rejected"}`` with chat messages, KTO takes a DPO pair
as one good and one bad item, and RFT reads OpenAI chat data with the answers left out.

A line in another mode's format is refused naming its line and what it looks like. :func:`to_wire` writes a
record in the canonical form (TRL's field names) that :func:`parse_item` reads back to the same record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.protocol.bounded_jsonl import MAX_FILE_BYTES, LineProblem, file_lines, loads_line
from qfnb.protocol.console import train_modes

__all__ = ["FORMATS", "MODES", "Conversation", "FormatError", "Judged", "Pair", "PromptItem", "Record", "Text",
           "looks_like",
           "parse_file", "parse_item", "parse_lines", "to_wire", "train_mode", "wants"]

#: the train modes, as the platform spells them (the table's names)
MODES = train_modes.MODES
#: what each mode's data looks like, in words
FORMATS: dict[str, str] = {m.name: m.data for m in train_modes.MODE_TABLE.values()}
train_mode = train_modes.train_mode

Message = dict[str, str]


class FormatError(ValueError):
    """A line of training data does not fit the train mode; the message names the line and the field."""


@dataclass(frozen=True)
class Pair:
    """DPO: the conversation up to the answer, the preferred answer and the rejected one."""

    messages: tuple[Message, ...]
    chosen: str
    rejected: str


@dataclass(frozen=True)
class Judged:
    """KTO: the conversation up to the answer, one answer, and whether it is a good one."""

    messages: tuple[Message, ...]
    answer: str
    desirable: bool


@dataclass(frozen=True)
class Text:
    """PostPretrain: a piece of plain text."""

    text: str


@dataclass(frozen=True)
class Conversation:
    """PostPretrain: a whole conversation, its answer last, learned in the base's chat format (the turns as the
    model will be asked them), not as plain text."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class PromptItem:
    """RFT: the conversation to answer; ``extra``: the line's other fields (passed to the reward);
    ``answer``: the line's own answer when it has one (SFT or chat data), never sampled: a warm start's."""

    messages: tuple[Message, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    answer: str | None = None


Record = Pair | Judged | Text | Conversation | PromptItem


def wants(mode: str) -> str:
    """What ``mode``'s data looks like, in words."""
    return train_modes.mode_row(mode).data


# ---- recognising a line -------------------------------------------------------------------------


def _turns(obj: Any) -> list[dict[str, Any]] | None:
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, list) and obj and all(isinstance(t, dict) for t in obj):
        return obj
    return None


def _sorted(value: Any) -> bool:
    """A Qianfan sorted-responses value: two or more answers, best first."""
    return isinstance(value, list) and len(value) >= 2


def _single(obj: Any) -> Any:
    """A one-item list's item (the platform writes every record as a list of turns), else ``obj``."""
    return obj[0] if isinstance(obj, list) and len(obj) == 1 and isinstance(obj[0], dict) else obj


def looks_like(obj: Any) -> str | None:
    """The format a JSON value looks like, in words (``"SFT (prompt/response)"``...), or None."""
    obj = _single(obj)
    if isinstance(obj, str):
        return "plain text"
    found = _one_object_format(obj) if isinstance(obj, dict) else None
    if found is not None:
        return found
    turns = _turns(obj)
    if turns is None:
        return None
    last = turns[-1]
    if "chosen" in last and "rejected" in last:
        return "DPO (prompt/chosen/rejected)"
    if "chosen" in last or "rejected" in last:
        return "KTO (prompt + chosen or rejected)"
    if _sorted(last.get("response")) and _sorted(_unwrap_list(last.get("response"))):
        return "sorted responses (prompt + ranked responses)"
    if "response" in last and ("prompt" in last or "user" in last):
        return "SFT (prompt/response)"
    if "prompt" in last or "user" in last:
        return "prompts (prompt)"
    return None


def _one_object_format(obj: dict[str, Any]) -> str | None:
    """The formats whose record is one object (never a list of turns)."""
    if "preferred_output" in obj or "non_preferred_output" in obj:
        return "OpenAI preference (input/preferred_output/non_preferred_output)"
    if isinstance(obj.get("messages"), list):
        return "OpenAI chat (messages)"
    if "text" in obj and not ({"prompt", "user"} & set(obj)):
        return "PostPretrain plain text (text)"
    if "completion" in obj and "label" in obj:
        return "KTO (prompt/completion/label)"
    return None


def _unwrap_list(value: Any) -> Any:
    """``[["a"], ["b"]]`` → ``["a", "b"]`` (Qianfan wraps each answer in a list)."""
    if isinstance(value, list):
        return [v[0] if isinstance(v, list) and v else v for v in value]
    return value


# ---- parsing ------------------------------------------------------------------------------------


def _text(value: Any, where: str, key: str) -> str:
    """A non-empty string; Qianfan's ``[["text"]]`` nesting and a list of assistant messages are unwrapped."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        value = value["content"]
    if not isinstance(value, str) or not value.strip():
        raise FormatError(f"{where}: {key} must be a non-empty string")
    return value


def _prompt_key(turn: dict[str, Any]) -> str:
    return "prompt" if "prompt" in turn else "user"


def _chat(messages: Any, where: str, key: str) -> list[Message]:
    """Chat messages ``[{"role", "content"}]`` checked: known roles, string contents."""
    if not isinstance(messages, list) or not messages:
        raise FormatError(f"{where}: {key} must be a non-empty list of {{role, content}} messages")
    out: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer"):
            raise FormatError(f"{where}: {key}[{i}] must be a message with role system, user or assistant")
        content = m.get("content")
        if not isinstance(content, str):
            raise FormatError(f"{where}: {key}[{i}].content must be a string")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return out


def _history(turns: list[dict[str, Any]], where: str) -> list[Message]:
    """The conversation up to the last turn's answer: Qianfan turns (``prompt``/``user``, earlier turns'
    ``response``/``assistant``, ``system`` on the first) or a ``prompt`` that is a list of messages."""
    first = turns[0]
    if len(turns) == 1 and isinstance(first.get("prompt"), list):
        msgs = _chat(first["prompt"], where, "prompt")
        if msgs[-1]["role"] != "user":
            raise FormatError(f"{where}: prompt must end with a user message")
        return msgs
    out: list[Message] = []
    system = first.get("system")
    if isinstance(system, str) and system:
        out.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        key = _prompt_key(turn)
        label = key if len(turns) == 1 else f"turn {i + 1} {key}"
        out.append({"role": "user", "content": _text(turn.get(key), where, label)})
        if i < len(turns) - 1:
            answer = turn.get("response", turn.get("assistant"))
            out.append({"role": "assistant", "content": _text(answer, where, f"turn {i + 1} response")})
    return out


def _refuse(mode: str, obj: Any, where: str) -> FormatError:
    seen = looks_like(obj)
    said = f"looks like {seen} data" if seen else "is not a recognised training record"
    return FormatError(f"{where}: {said}; {mode} wants {wants(mode)}")


def _openai_pair(obj: dict[str, Any], where: str) -> Pair:
    inp = obj.get("input")
    if not isinstance(inp, dict):
        raise FormatError(f"{where}: input must be an object with messages")
    msgs = _chat(inp.get("messages"), where, "input.messages")
    return Pair(tuple(msgs), _text(obj.get("preferred_output"), where, "preferred_output"),
                _text(obj.get("non_preferred_output"), where, "non_preferred_output"))


def _pair(obj: Any, where: str) -> Pair | None:
    """A DPO pair from any of its formats, None when ``obj`` is none of them."""
    if isinstance(obj, dict) and ("preferred_output" in obj or "non_preferred_output" in obj):
        return _openai_pair(obj, where)
    turns = _turns(obj)
    if turns is None:
        return None
    last = turns[-1]
    if "chosen" in last and "rejected" in last:
        return Pair(tuple(_history(turns, where)), _text(last["chosen"], where, "chosen"),
                    _text(last["rejected"], where, "rejected"))
    ranked = _unwrap_list(last.get("response"))
    if _sorted(last.get("response")) and _sorted(ranked) and len(set(map(str, ranked))) > 1:
        return Pair(tuple(_history(turns, where)), _text(ranked[0], where, "response[0]"),
                    _text(ranked[-1], where, f"response[{len(ranked) - 1}]"))
    return None


def _judged(obj: Any, where: str) -> list[Judged] | None:
    if isinstance(obj, dict) and "completion" in obj and "label" in obj:
        if not isinstance(obj["label"], bool):
            raise FormatError(f"{where}: label must be true or false, got {obj['label']!r}")
        return [Judged(tuple(_history([obj], where)), _text(obj["completion"], where, "completion"), obj["label"])]
    turns = _turns(obj)
    if turns is not None and ("chosen" in turns[-1]) != ("rejected" in turns[-1]):
        key = "chosen" if "chosen" in turns[-1] else "rejected"
        return [Judged(tuple(_history(turns, where)), _text(turns[-1][key], where, key), key == "chosen")]
    pair = _pair(obj, where)  # a pair gives one good and one bad item
    if pair is None:
        return None
    return [Judged(pair.messages, pair.chosen, True), Judged(pair.messages, pair.rejected, False)]


def _prompt(obj: Any, where: str) -> PromptItem | None:
    if isinstance(obj, dict) and isinstance(obj.get("messages"), list):
        msgs = _chat(obj["messages"], where, "messages")
        answer = None
        while msgs and msgs[-1]["role"] == "assistant":  # the answer is the policy's to write
            answer = str(msgs.pop()["content"])
        if not msgs or msgs[-1]["role"] != "user":
            raise FormatError(f"{where}: messages must hold a user message to answer")
        return PromptItem(tuple(msgs), {k: v for k, v in obj.items() if k != "messages"}, answer or None)
    turns = _turns(obj)
    if turns is None or not ({"prompt", "user"} & set(turns[-1])):
        return None
    if any(k in turns[-1] for k in ("chosen", "rejected")):
        return None
    last = turns[-1]
    extra = {k: v for k, v in last.items() if k not in ("prompt", "user", "response", "system", "assistant")}
    # the last turn's response is not sampled (SFT data as prompts; a warm start's answer); earlier ones are the
    # conversation
    return PromptItem(tuple(_history(turns, where)), extra if len(turns) == 1 else {}, _answer(last, where))


def _answer(turn: dict[str, Any], where: str) -> str | None:
    """A prompt line's own answer (its one ``response``), or None (none, or several ranked ones)."""
    response = turn.get("response", turn.get("assistant"))
    if response in (None, "", []):
        return None
    try:
        return _text(response, where, "response")
    except FormatError:
        return None


def parse_item(mode: str, obj: Any, where: str) -> list[Record]:
    """The records one JSON value gives in ``mode`` (a KTO pair gives two); FormatError naming ``where``
    (e.g. ``"line 3"``) and the field, or what format the value looks like when it is another mode's."""
    row = train_modes.mode_row(mode)
    mode, obj = row.name, _single(obj)
    if row.reads == "turns":
        raise FormatError(f"{where}: {mode} data is read by the SFT loader, not parse_item")
    found = _READERS[row.reads](obj, where)
    if found is None:
        raise _refuse(mode, obj, where)
    return found


def _texts(obj: Any, where: str) -> list[Record] | None:
    """Plain text, or a conversation: a DPO pair's preferred one, or a chat or prompt/response line with its
    answer (a prompt without one is RFT's, refused)."""
    if isinstance(obj, dict) and "text" in obj and looks_like(obj) == "PostPretrain plain text (text)":
        return [Text(_text(obj["text"], where, "text"))]
    pair = _pair(obj, where)
    if pair is not None:
        return [Conversation((*pair.messages, {"role": "assistant", "content": pair.chosen}))]
    item = _prompt(obj, where)
    if item is not None and item.answer is not None:
        return [Conversation((*item.messages, {"role": "assistant", "content": item.answer}))]
    return None


def _one(read: Callable[[Any, str], Record | None]) -> Callable[[Any, str], list[Record] | None]:
    """``read``'s one record as a list."""
    def records(obj: Any, where: str) -> list[Record] | None:
        found = read(obj, where)
        return None if found is None else [found]
    return records


#: each kind of data (:data:`qfnb.protocol.console.train_modes.Reads`): the records one JSON value gives, or
#: None when the value is not of that kind
_READERS: dict[str, Callable[[Any, str], list[Record] | None]] = {
    "pairs": _one(_pair), "judged": lambda obj, where: list(_judged(obj, where) or []) or None, "texts": _texts,
    "prompts": _one(_prompt)}


def json_lines(lines: Iterable[str], name: str = "train_file") -> Iterator[tuple[str, Any]]:
    """``(where, value)`` of each non-blank JSONL line (``where``: ``"train_file line 3"``); FormatError
    naming the line that is not JSON or nests too deep (:mod:`qfnb.protocol.bounded_jsonl`)."""
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield f"{name} line {no}", loads_line(line.rstrip("\r\n"), no)
        except LineProblem as exc:
            raise FormatError(f"{name} line {no}: {exc.message}") from None


def parse_lines(mode: str, lines: Iterable[str], name: str = "train_file") -> list[Record]:
    """The records of JSONL ``lines`` in ``mode``; errors name ``name`` and the 1-based line."""
    out: list[Record] = []
    for where, obj in json_lines(lines, name):
        out.extend(parse_item(mode, obj, where))
    if not out:
        raise FormatError(f"{name}: no records (a {train_mode(mode)} run wants {wants(mode)})")
    return out


def text_chunks(text: str) -> list[Text]:
    """A plain-text file's documents: paragraphs separated by blank lines (the whole text if none)."""
    parts = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n")]
    return [Text(p) for p in parts if p]


def parse_file(mode: str, path: Path, name: str = "train_file") -> list[Record]:
    """The records of a ``.jsonl`` file, read a line at a time under :mod:`qfnb.protocol.bounded_jsonl`'s
    bounds (a ``.json`` list too, and a ``.txt`` file, PostPretrain's plain text: each at most
    :data:`~qfnb.protocol.bounded_jsonl.MAX_FILE_BYTES`)."""
    path = Path(path)
    if path.suffix.lower() not in (".txt", ".json"):
        try:
            return parse_lines(mode, _bounded_lines(path, name), name)
        except FileNotFoundError:
            raise FormatError(f"{name}: {path} not found") from None
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FormatError(f"{name}: {path.name} passes {MAX_FILE_BYTES} bytes, the most a training file may hold")
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{name}: {path} not found") from None
    if path.suffix.lower() == ".txt":
        if not train_modes.mode_row(mode).packed:
            raise FormatError(f"{name}: a .txt file is plain text (PostPretrain data); "
                              f"{train_mode(mode)} wants {wants(mode)}")
        chunks = text_chunks(content)
        if not chunks:
            raise FormatError(f"{name}: {path.name} is empty")
        return list(chunks)
    try:
        items = loads_line(content, 1)
    except LineProblem as exc:
        raise FormatError(f"{name}: {exc.message}") from None
    items = items if isinstance(items, list) else [items]
    return [r for i, obj in enumerate(items) for r in parse_item(mode, obj, f"{name} item {i}")]


def _bounded_lines(path: Path, name: str) -> Iterator[str]:
    """Each line's text of a JSONL file, one held at a time; FormatError at a line past a bound."""
    try:
        for _, text in file_lines(path):
            yield text
    except LineProblem as exc:
        raise FormatError(f"{name} line {exc.line}: {exc.message}") from None


def to_wire(record: Record) -> dict[str, Any]:
    """``record`` as one JSON line that :func:`parse_item` reads back to it (TRL's field names)."""
    if isinstance(record, Pair):
        return {"prompt": list(record.messages), "chosen": record.chosen, "rejected": record.rejected}
    if isinstance(record, Judged):
        return {"prompt": list(record.messages), "completion": record.answer, "label": record.desirable}
    if isinstance(record, Text):
        return {"text": record.text}
    if isinstance(record, Conversation):
        return {"messages": list(record.messages)}
    return {"messages": list(record.messages), **record.extra}

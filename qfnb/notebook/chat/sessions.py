"""Named chat sessions for ``%%qfchat``: history per name, listing and transcripts (no IPython).

A session's history is a list of :class:`Exchange`: one user prompt and every turn up to its
answer, as OpenAI chat messages. A ``--tools``/``--mcp`` cell's exchange keeps its tool turns (the
assistant's ``tool_calls`` and the ``tool`` results, in order) before the answer, so later cells
show the model the pattern question, call, result, answer. History is sent and counted in whole
exchanges: a ``tool`` message never goes without the call it answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfnb.resources.safe_html import clean, escape, markdown

#: the session of ``%%qfchat`` cells without ``-s``: kept in the kernel (its recent turns are sent along)
DEFAULT_SESSION = "default"
#: the most characters of a tool result a transcript shows (the session keeps it whole)
_SHOWN_RESULT_CHARS = 500


@dataclass(frozen=True)
class Exchange:
    """One exchange: the user's prompt, then each turn up to the answer (OpenAI chat messages)."""

    messages: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, prompt: str, answer: str, tool_turns: Sequence[Mapping[str, Any]] = ()) -> Exchange:
        """The exchange of ``prompt`` answered by ``answer``, with a tool loop's turns between."""
        return cls(({"role": "user", "content": prompt}, *(dict(m) for m in tool_turns),
                    {"role": "assistant", "content": answer}))

    @property
    def chars(self) -> int:
        """Its size in characters: every turn's text and tool call (what a context budget counts)."""
        return sum(len(str(m.get("content") or ""))
                   + (len(json.dumps(m["tool_calls"], ensure_ascii=False)) if m.get("tool_calls") else 0)
                   for m in self.messages)


def split_exchanges(messages: Sequence[Mapping[str, Any]]) -> list[Exchange]:
    """A flat history as exchanges, each starting at a user turn (turns before the first one
    join the first exchange)."""
    groups: list[list[dict[str, Any]]] = []
    for m in messages:
        if m.get("role") == "user" or not groups:
            groups.append([])
        groups[-1].append(dict(m))
    return [Exchange(tuple(g)) for g in groups]


def fitted(exchanges: Sequence[Exchange], max_history: int, max_chars: int | None = None) -> list[Exchange]:
    """The newest exchanges to send: at most ``max_history``, and (``max_chars``) only as many of
    the newest as fit that many characters together; whole exchanges only, the oldest dropped first."""
    if max_history <= 0:
        return []
    kept = list(exchanges[-max_history:])
    if max_chars is None:
        return kept
    total, start = 0, len(kept)
    while start > 0 and total + kept[start - 1].chars <= max_chars:
        start -= 1
        total += kept[start].chars
    return kept[start:]


@dataclass
class ChatSession:
    """One named conversation with one model: its exchanges, oldest first."""

    name: str
    exchanges: list[Exchange] = field(default_factory=list)
    model: str | None = None  # the model its turns were with (a thread never mixes models silently)

    @classmethod
    def from_messages(cls, name: str, messages: Sequence[Mapping[str, Any]], model: str | None = None) -> ChatSession:
        """A session holding a flat history (the platform's transcript of a named session)."""
        return cls(name, split_exchanges(messages), model)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every turn of every exchange, oldest first."""
        return [dict(m) for e in self.exchanges for m in e.messages]

    def history(self, max_history: int, max_chars: int | None = None) -> list[Exchange]:
        """The exchanges a new prompt carries (see :func:`fitted`)."""
        return fitted(self.exchanges, max_history, max_chars)

    def request_messages(self, prompt: str, max_history: int, max_chars: int | None = None) -> list[dict[str, Any]]:
        """The history a new ``prompt`` carries (whole exchanges), then the prompt."""
        turns = [dict(m) for e in self.history(max_history, max_chars) for m in e.messages]
        return [*turns, {"role": "user", "content": prompt}]

    def record(self, prompt: str, answer: str, tool_turns: Sequence[Mapping[str, Any]] = ()) -> None:
        """Keep one exchange: ``prompt``, a tool loop's ``tool_turns`` (calls and results), ``answer``."""
        self.exchanges.append(Exchange.of(prompt, answer, tool_turns))


class SessionStore:
    """Named in-memory sessions (per magics instance, i.e. per kernel), each a thread with one
    model: switching ``-m`` on a session with turns parks its thread and starts (or resumes) the
    new model's, unless the switch is to carry the turns over (``--continue``)."""

    def __init__(self) -> None:
        self._sessions: dict[str, ChatSession] = {}
        self._parked: dict[tuple[str, str | None], ChatSession] = {}

    def thread(self, name: str, model: str | None, *, carry: bool = False) -> tuple[ChatSession, str | None]:
        """Session ``name``'s thread with ``model``, and the model of the thread with turns it
        switched away from (None: no switch). ``carry``: the turns go on with ``model``."""
        current = self.get(name)
        if current.model is None or current.model == model or not current.exchanges:
            current.model = model
            return current, None
        old = current.model
        if carry:
            current.model = model
            return current, old
        self._parked[(name, old)] = current
        parked = self._parked.pop((name, model)) if (name, model) in self._parked else None
        self._sessions[name] = parked or ChatSession(name, model=model)
        return self._sessions[name], old

    def get(self, name: str) -> ChatSession:
        return self._sessions.setdefault(name, ChatSession(name))

    def reset(self, name: str | None = None) -> None:
        if name is None:
            self._sessions.clear()
            self._parked.clear()
        else:
            self._sessions.pop(name, None)
            self._parked = {k: v for k, v in self._parked.items() if k[0] != name}

    def names(self) -> list[str]:
        return sorted(self._sessions)


class SessionList:
    """``%qfchat sessions``: names and exchange counts."""

    def __init__(self, rows: list[tuple[str, int]]) -> None:
        self.rows = rows

    def __repr__(self) -> str:
        if not self.rows:
            return "no chat sessions yet"
        return "\n".join(f"{name}: {n} exchange(s)" for name, n in self.rows)


def _calls_line(message: Mapping[str, Any]) -> str:
    """An assistant turn's tool calls as ``name(arguments)`` lines."""
    calls = [c.get("function") or {} for c in message.get("tool_calls") or ()]
    return "\n".join(f"→ {fn.get('name', '')}({fn.get('arguments', '')})" for fn in calls)


def _shown(message: Mapping[str, Any]) -> tuple[str, str]:
    """A turn as a transcript shows it: its label and text (a call's name and arguments, a tool
    result cut to :data:`_SHOWN_RESULT_CHARS`)."""
    role, content = str(message.get("role")), str(message.get("content") or "")
    if role == "tool":
        cut = content[:_SHOWN_RESULT_CHARS] + ("…" if len(content) > _SHOWN_RESULT_CHARS else "")
        return f"tool {message.get('name') or ''}".rstrip(), cut
    if message.get("tool_calls"):
        return role, "\n".join(part for part in (content, _calls_line(message)) if part)
    return role, content


class SessionHistory:
    """``%qfchat history NAME``: the transcript, as text and sanitised HTML (each turn's Markdown
    rendered by :func:`qfnb.resources.safe_html.markdown`; tool calls and results as code)."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        lines = [f"{label}: {text}" for label, text in map(_shown, self.session.messages)]
        return "\n".join(lines) or f"session {self.session.name!r} is empty"

    def _repr_html_(self) -> str:
        parts = []
        for m in self.session.messages:
            label, text = _shown(m)
            body = (f"<pre>{escape(text)}</pre>" if m.get("role") == "tool" or m.get("tool_calls")
                    else markdown(text))
            parts.append(f'<div class="qfnb-turn"><b>{escape(label)}</b>{body}</div>')
        empty = f"<i>session <code>{escape(self.session.name)}</code> is empty</i>"
        return clean(f'<div class="qfnb-history">{"".join(parts) or empty}</div>')

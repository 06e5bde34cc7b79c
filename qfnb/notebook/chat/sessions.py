"""Named chat sessions for ``%%qfchat``: history per name, listing and transcripts (no IPython)."""

from __future__ import annotations

from dataclasses import dataclass, field

from qfnb.protocol.safe_html import clean, escape, markdown

#: the session of ``%%qfchat`` cells without ``-s``: kept in the kernel (its recent turns are sent along)
DEFAULT_SESSION = "default"


@dataclass
class ChatSession:
    """One named conversation with one model: alternating user/assistant messages."""

    name: str
    messages: list[dict[str, str]] = field(default_factory=list)
    model: str | None = None  # the model its turns were with (a thread never mixes models silently)

    def request_messages(self, prompt: str, max_history: int) -> list[dict[str, str]]:
        history = self.messages[-2 * max_history :] if max_history > 0 else []
        return [*history, {"role": "user", "content": prompt}]

    def record(self, prompt: str, answer: str) -> None:
        self.messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]

    @property
    def exchanges(self) -> int:
        return len(self.messages) // 2


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
        if current.model is None or current.model == model or not current.messages:
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


class SessionHistory:
    """``%qfchat history NAME``: the transcript, as text and sanitised HTML (each turn's Markdown
    rendered by :func:`qfnb.protocol.safe_html.markdown`)."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        lines = [f"{m['role']}: {m['content']}" for m in self.session.messages]
        return "\n".join(lines) or f"session {self.session.name!r} is empty"

    def _repr_html_(self) -> str:
        parts = [f'<div class="qfnb-turn"><b>{escape(m["role"])}</b>'
                 f'{markdown(str(m["content"]))}</div>' for m in self.session.messages]
        empty = f"<i>session <code>{escape(self.session.name)}</code> is empty</i>"
        return clean(f'<div class="qfnb-history">{"".join(parts) or empty}</div>')

"""Named chat sessions for ``%%qfchat``: history per name, listing and transcripts (no IPython)."""

from __future__ import annotations

from dataclasses import dataclass, field

from qfnb.protocol.safe_html import clean, escape, markdown


@dataclass
class ChatSession:
    """One named conversation: alternating user/assistant messages."""

    name: str
    messages: list[dict[str, str]] = field(default_factory=list)

    def request_messages(self, prompt: str, max_history: int) -> list[dict[str, str]]:
        history = self.messages[-2 * max_history :] if max_history > 0 else []
        return [*history, {"role": "user", "content": prompt}]

    def record(self, prompt: str, answer: str) -> None:
        self.messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]

    @property
    def exchanges(self) -> int:
        return len(self.messages) // 2


class SessionStore:
    """Named in-memory sessions (per magics instance, i.e. per kernel)."""

    def __init__(self) -> None:
        self._sessions: dict[str, ChatSession] = {}

    def get(self, name: str) -> ChatSession:
        if name not in self._sessions:
            self._sessions[name] = ChatSession(name)
        return self._sessions[name]

    def reset(self, name: str | None = None) -> None:
        if name is None:
            self._sessions.clear()
        else:
            self._sessions.pop(name, None)

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

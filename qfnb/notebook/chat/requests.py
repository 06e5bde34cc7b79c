"""The requests of one ``%%qfchat`` cell: history from the session, what the footer will say.

Cells without ``-s`` share the session ``default`` (as jupyter-ai's ``%%ai`` carries recent
exchanges): each request carries the session's last ``max_history`` exchanges (a tool cell's with
its tool calls and results; no more characters than ``max_chars``), and its footer
says so ("session default · 2 turns in context"), with where it ran and, for a base model,
that it only continues text (capped at :data:`qfnb.notebook.models.roles.BASE_CAP` tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from qfnb.notebook.chat.answer import CellChatRequest
from qfnb.notebook.chat.conversations import Asked, PlatformConversations
from qfnb.notebook.chat.sessions import SessionStore
from qfnb.notebook.models import roles
from qfnb.notebook.sampling import SamplingOptions

__all__ = ["build_requests", "session_of"]


def session_of(session: str, target: tuple[str | None, str | None], multi: bool) -> str:
    """The session name one target's history lives in (side by side: one per model)."""
    model, endpoint = target
    return f"{session}[{model or endpoint}]" if multi else session


def _switch_note(session: str, was: str, now: str | None, *, carry: bool, resumed: bool) -> str:
    """The footer's warning when ``-m`` changes on a session with turns."""
    if carry:
        return f"⚠ {was}'s turns in session {session} carried over to {now}"
    if resumed:
        return f"⚠ session {session}: back to {now}'s thread ({was}'s turns not sent; --continue sends them)"
    return f"⚠ new thread: session {session}'s turns were with {was}, not sent to {now} (--continue sends them)"


def build_requests(
    targets: Sequence[tuple[str | None, str | None]],
    prompt: str,
    *,
    sessions: SessionStore,
    session: str,
    max_history: int,
    max_chars: int | None = None,
    default_name: str | None = None,
    where: str | None = None,
    sampling: SamplingOptions | None = None,
    system: str | None = None,
    stream: bool = True,
    fresh: bool = False,
    body: dict[str, Any] | None = None,
    carry: bool = False,
    conversations: PlatformConversations | None = None,
) -> list[CellChatRequest]:
    """One :class:`CellChatRequest` per target (a base model's answer capped, unless ``--max-tokens``).
    A session's history is per model: a different ``-m`` on a session with turns starts a new
    thread and says so in the footer, unless ``carry`` (``--continue``). The kernel's history goes
    in whole exchanges (a tool cell's calls and results with it): the last ``max_history``, the
    oldest dropped first while they hold more than ``max_chars`` characters. With ``conversations``
    (``-s NAME``) the platform keeps the session: each request sends only the prompt and the
    stored turn it follows, and ``max_history`` does not apply (the whole conversation goes); a
    re-run cell that matches the stored turn at its place replays it (:mod:`.conversations`)."""
    sampling = sampling or SamplingOptions()
    max_tokens = sampling.max_output_tokens
    multi = len(targets) > 1
    requests = []
    for target in targets:
        name = session_of(session, target, multi)
        model = target[0] or (default_name if target[1] is None else None)
        thread = model or target[1]
        chain = None
        if conversations is not None:
            ask = Asked(prompt, system, sampling.fields(), fresh=fresh)
            found = conversations.find(name, thread or "", carry=carry, ask=ask)
            chain, history, switched, resumed = found.chain, found.turns, found.switched, found.resumed
            place, messages = found.turns, [{"role": "user", "content": prompt}]
            if found.replayed is not None:  # a re-run cell: the stored turn, no call (no thread switch either)
                switched = None
        else:
            sess, switched = sessions.thread(name, thread, carry=carry)
            history = len(sess.history(max_history, max_chars))
            place, resumed = len(sess.exchanges), bool(sess.exchanges)
            messages = sess.request_messages(prompt, max_history, max_chars)
        base = roles.is_base(model)
        notes = [roles.base_note(max_tokens)] if base else []
        if switched is not None:
            notes.insert(0, _switch_note(name, switched, thread, carry=carry, resumed=resumed))
        if chain is not None:
            notes.insert(0, "kept by the platform")
        if chain is not None and chain.replay is not None:
            notes.append(f"↺ replayed turn {history + 1} of {name}")
        requests.append(CellChatRequest(
            messages=messages, model=target[0], endpoint=target[1], chain=chain,
            sampling=replace(sampling, max_output_tokens=roles.BASE_CAP) if base and max_tokens is None else sampling,
            name=default_name, session=name, turns=history, where=where,
            note=" · ".join(notes) or None, system=system, stream=stream, fresh=fresh,
            body=dict(body or {}), place=place))
    return requests

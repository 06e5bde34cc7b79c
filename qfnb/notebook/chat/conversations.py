"""``%%qfchat -s NAME``: a named conversation the platform keeps (no IPython here).

Each cell of a named session is one turn of a Responses-API chain (``/v2/responses``): the cell
sends only its prompt with ``previous_response_id``, the platform rebuilds the conversation from
its store, and every turn carries the metadata ``qfnb_session`` (the name) and ``qfnb_thread``
(the model it was with). A cell finds where to continue by asking the platform for the session's
stored turns, so the conversation outlives the kernel and the platform's daemon alike, and
``%qfchat history NAME`` reads it back from there.

Re-running a notebook replays it: a kernel that has not yet sent a turn of a session's thread
follows its stored chain from the start, and a cell whose prompt (and instructions, and the
sampling it sets) is the stored turn's at that place is answered from that turn, with no call.
The first cell that differs continues the conversation from its newest turn, as does every cell
after it (``--fresh`` asks a matching turn again at its place; ``--reset`` starts over).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import StreamError
from qfnb.protocol.wires.chat.bodies import ResponsesFields
from qfnb.protocol.wires.responses.request import chat_messages, chat_usage, output_text, text_format

if TYPE_CHECKING:
    from qfnb.resources.v2_client import Responses

__all__ = ["SESSION_KEY", "THREAD_KEY", "Asked", "Chain", "Found", "Piece", "PlatformConversations", "ReplayedTurn",
           "replay_turn", "stream_turn", "turn_body"]

#: the metadata key naming a turn's session, and the one naming its model (a thread of the session)
SESSION_KEY, THREAD_KEY = "qfnb_session", "qfnb_thread"
#: the most turns one listing page brings
_PAGE = 100


@dataclass(frozen=True)
class Chain:
    """Where a cell of a named session continues: the stored response it follows (None: the
    session's first turn with this model) and the metadata its turn is stored with."""

    previous: str | None
    metadata: dict[str, str]
    #: a stored turn this cell replays (same prompt at the same place in the chain): nothing is sent
    replay: dict[str, Any] | None = None


@dataclass(frozen=True)
class Found:
    """A session's thread for one model: its chain, how many turns it holds, and the model of the
    thread with turns that this cell switches away from (None: no switch)."""

    chain: Chain
    turns: int = 0
    switched: str | None = None
    resumed: bool = False

    @property
    def replayed(self) -> int | None:
        """The place (1-based) in the chain of the stored turn this cell replays; None: it asks."""
        return self.turns + 1 if self.chain.replay is not None else None


class PlatformConversations:
    """The named sessions stored on the platform, through ``Qianfan().responses``; per kernel, how
    far a re-run has followed each thread's stored chain (see the module's docstring)."""

    def __init__(self) -> None:
        #: (session, model) -> how many stored turns of that thread this kernel has replayed
        self._followed: dict[tuple[str, str], int] = {}
        #: the threads this kernel has sent a turn to: they go on from their newest turn
        self._asked: set[tuple[str, str]] = set()

    def _responses(self) -> Responses:
        from qfnb.resources.v2_client import Qianfan  # deferred: loads the HTTP client (`%load_ext qfnb` does not)

        return Qianfan().responses

    def turns(self, name: str) -> list[dict[str, Any]]:
        """Every stored turn (response object) of session ``name``, oldest first."""
        client, found, after = self._responses(), [], None
        while True:
            page = client.list(metadata={SESSION_KEY: name}, limit=_PAGE, order="asc", after=after)
            found += list(page["data"])
            if not page["has_more"]:
                return found
            after = page["last_id"]

    def find(self, name: str, model: str, *, carry: bool = False, ask: Asked | None = None) -> Found:
        """Where session ``name`` goes on with ``model``: its newest turn when that was with
        ``model`` (or ``carry``: the turns go on with another model); else the newest turn of its
        thread with ``model``, or a new thread. ``ask``: the cell's turn, replayed when it is the
        stored turn at the place this kernel has followed the chain to."""
        turns = self.turns(name)
        meta = {SESSION_KEY: name, THREAD_KEY: model}
        found = _where(turns, model, meta, carry=carry)
        if ask is None:
            return found
        key = (name, model)
        stored = _chain(turns, found.chain.previous) if found.chain.previous is not None else []
        at = self._followed.get(key, 0)
        if key in self._asked or at >= len(stored) or not self._matches(stored[at], ask):
            self._asked.add(key)
            return found
        if ask.fresh:  # asked again at its place: a new branch, which the session goes on from
            self._asked.add(key)
            return replace(found, chain=replace(found.chain, previous=stored[at - 1]["id"] if at else None), turns=at)
        self._followed[key] = at + 1
        return replace(found, chain=replace(found.chain, previous=stored[at].get("previous_response_id"),
                                            replay=stored[at]), turns=at)

    def _matches(self, turn: dict[str, Any], ask: Asked) -> bool:
        """Whether the stored ``turn`` was asked what ``ask`` asks (its input, instructions and the
        sampling the cell sets)."""
        if (turn.get("instructions") or None) != (ask.system or None):
            return False
        if any(turn.get(k) != v for k, v in ask.sampling.items() if k in ResponsesFields.model_fields):
            return False
        items = self._responses().input_items(turn["id"], limit=_PAGE, order="asc")["data"]
        try:
            asked = chat_messages(items, field_name="input")
        except ValueError:  # media parts: not a cell's prompt
            return False
        return [(m["role"], m["content"]) for m in asked] == [("user", ask.prompt)]

    def messages(self, name: str) -> tuple[list[dict[str, Any]], str | None]:
        """The conversation of session ``name``'s newest turn, as chat messages (each turn's input
        and answer, oldest first), and the model it was with; empty when the platform has none."""
        turns = self.turns(name)
        if not turns:
            return [], None
        client, items = self._responses(), []
        for turn in _chain(turns, turns[-1]["id"]):
            asked = client.input_items(turn["id"], limit=_PAGE, order="asc")
            items += [*asked["data"], *(turn.get("output") or ())]
        model = (turns[-1].get("metadata") or {}).get(THREAD_KEY) or turns[-1].get("model")
        return chat_messages(items, field_name="history"), model

    def forget(self, name: str) -> int:
        """Delete every stored turn of session ``name``; how many there were."""
        client = self._responses()
        turns = self.turns(name)
        for turn in turns:
            client.delete(turn["id"])
        self._followed = {k: v for k, v in self._followed.items() if k[0] != name}
        self._asked = {k for k in self._asked if k[0] != name}
        return len(turns)


@dataclass(frozen=True)
class Asked:
    """What one cell of a named session asks: its prompt, instructions and sampling fields, and
    whether it asks again (``--fresh``) instead of replaying the stored turn."""

    prompt: str
    system: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    fresh: bool = False


def _where(turns: list[dict[str, Any]], model: str, meta: dict[str, str], *, carry: bool) -> Found:
    """The place a turn with ``model`` goes among a session's stored ``turns`` (see ``find``)."""
    if not turns:
        return Found(Chain(None, meta))
    last = turns[-1]
    was = (last.get("metadata") or {}).get(THREAD_KEY)
    if was == model or carry:
        return Found(Chain(last["id"], meta), len(_chain(turns, last["id"])), None if was == model else was)
    mine = [t for t in turns if (t.get("metadata") or {}).get(THREAD_KEY) == model]
    if not mine:
        return Found(Chain(None, meta), 0, was)
    return Found(Chain(mine[-1]["id"], meta), len(_chain(turns, mine[-1]["id"])), was, resumed=True)


def _chain(turns: list[dict[str, Any]], last: str) -> list[dict[str, Any]]:
    """The turns from the first to ``last`` along ``previous_response_id`` (within ``turns``)."""
    by_id = {t["id"]: t for t in turns}
    out: list[dict[str, Any]] = []
    current: str | None = last
    while current in by_id and len(out) < len(turns):
        out.append(by_id[current])
        current = by_id[current].get("previous_response_id")
    return out[::-1]


@dataclass(frozen=True)
class Piece:
    """A piece of a named session's answer: new text, and at the end its usage (chat's names) and
    the raw response; the answering model's name once known."""

    text: str = ""
    usage: dict[str, Any] | None = None
    response: Any = None
    model: str | None = None


def turn_body(model: str | None, prompt: str, chain: Chain, *, system: str | None = None,
              sampling: dict[str, Any] | None = None, response_format: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Responses body of one cell's turn: its prompt only (the platform holds the rest)."""
    if not model:
        raise ValueError("no model to ask: name one with -m (the platform reported no default chat model)")
    sampling = sampling or {}
    body: dict[str, Any] = {"model": model, "input": prompt, "metadata": dict(chain.metadata)}
    if chain.previous is not None:
        body["previous_response_id"] = chain.previous
    if system:
        body["instructions"] = system
    body.update({k: v for k, v in sampling.items() if k in ResponsesFields.model_fields})  # what the body takes
    if response_format is not None:
        body["text"] = text_format(response_format)
    return body


@dataclass(frozen=True)
class ReplayedTurn:
    """A stored turn shown again (a re-run cell): its response object and what the saved notebook
    keeps of where it came from."""

    body: dict[str, Any]

    @property
    def provenance(self) -> dict[str, Any]:
        body = self.body
        return {"model": body.get("model"), "api": "responses", "usage": chat_usage(body.get("usage") or {}),
                "platform": "local", "replayed": {"response_id": body.get("id"), "created_at": body.get("created_at")}}


def replay_turn(turn: dict[str, Any]) -> list[Piece]:
    """The pieces of a stored turn's answer, as :func:`stream_turn` gave them when it was asked."""
    return [Piece(model=turn.get("model")),
            Piece(text=output_text(turn), usage=chat_usage(turn.get("usage") or {}), response=ReplayedTurn(turn))]


async def stream_turn(responses: Responses, body: dict[str, Any], *, stream: bool = True) -> AsyncIterator[Piece]:
    """One cell's turn of a named session, piece by piece (the model's name first)."""
    result = await responses.acreate(stream=stream, **body)
    if not stream:
        yield Piece(text=output_text(result.body), usage=chat_usage(result.body.get("usage") or {}),
                    response=result, model=result.body.get("model"))
        return
    try:
        async for event in result:
            kind = event.body.get("type")
            if kind == "response.created":
                yield Piece(model=event.body["response"].get("model"))
            elif kind == "response.output_text.delta":
                yield Piece(text=str(event.body.get("delta") or ""))
            elif kind in ("response.completed", "response.incomplete"):
                yield Piece(usage=chat_usage(event.body["response"].get("usage") or {}), response=event)
            elif kind in ("response.failed", "error"):
                error = event.body.get("response", {}).get("error") or event.body
                raise StreamError(f"the platform could not answer: {error.get('message', error)}")
    finally:
        if isinstance(result, AsyncGenerator):  # the events' stream, closed when the cell leaves it early
            await result.aclose()

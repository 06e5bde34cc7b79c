"""``%%qfchat -s NAME``: a named conversation the platform keeps (no IPython here).

Each cell of a named session is one turn of a Responses-API chain (``/v2/responses``): the cell
sends only its prompt with ``previous_response_id``, the platform rebuilds the conversation from
its store, and every turn carries the metadata ``qfnb_session`` (the name) and ``qfnb_thread``
(the model it was with). A cell finds where to continue by asking the platform for the session's
stored turns, so the conversation outlives the kernel and the platform's daemon alike, and
``%qfchat history NAME`` reads it back from there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import StreamError
from qfnb.protocol.responses import chat_messages, chat_usage, output_text, text_format

if TYPE_CHECKING:
    from qfnb.resources.v2_client import Responses

__all__ = ["SESSION_KEY", "THREAD_KEY", "Chain", "Found", "Piece", "PlatformConversations", "stream_turn", "turn_body"]

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


@dataclass(frozen=True)
class Found:
    """A session's thread for one model: its chain, how many turns it holds, and the model of the
    thread with turns that this cell switches away from (None: no switch)."""

    chain: Chain
    turns: int = 0
    switched: str | None = None
    resumed: bool = False


class PlatformConversations:
    """The named sessions stored on the platform, through ``Qianfan().responses``."""

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

    def find(self, name: str, model: str, *, carry: bool = False) -> Found:
        """Where session ``name`` goes on with ``model``: its newest turn when that was with
        ``model`` (or ``carry``: the turns go on with another model); else the newest turn of its
        thread with ``model``, or a new thread."""
        turns = self.turns(name)
        meta = {SESSION_KEY: name, THREAD_KEY: model}
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
        return len(turns)


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
    body.update({k: sampling[k] for k in ("temperature", "top_p", "max_output_tokens") if k in sampling})
    if response_format is not None:
        body["text"] = text_format(response_format)
    return body


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
        close = getattr(result, "aclose", None)
        if close is not None:
            await close()

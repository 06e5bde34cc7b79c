"""Fill in the middle on our own llama-server (``POST /infill``): code completion for an editor.

The text before and after the cursor and the context chunks (``input_extra``: a notebook's earlier
cells, the kernel's names in scope) go to llama-server as they are: it renders them with the model's
own FIM tokens (Qwen2.5-Coder's repo-level format: ``<|file_sep|>`` chunks, then
``<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>``) and cuts them to the slot's context.

A completion takes a turn in the engine's interactive lane, as a chat does (it never waits behind
batch traffic and never takes a batch row's slot), keyed by its document, so the slot that served
the last keystroke's completion serves the next and reads most of its prompt from its cache. It
streams; a reader that stops before the end (the user typed on, the client left) closes the
stream, and llama-server stops the slot's generation as its connection closes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from qfnb.local.engines.ask import INTERACTIVE
from qfnb.local.engines.base import FINISH_LENGTH, FINISH_NORMAL, FINISH_STOP, Delta
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import prompts, transport
from qfnb.local.engines.llama.server import EngineUnavailable
from qfnb.local.engines.llama.transport import Endpoint
from qfnb.protocol.wires.completion import MAX_COMPLETION_TOKENS
from qfnb.protocol.wires.sse import SSEDecoder

__all__ = ["InfillAsk", "Infiller", "infill"]

log = logging.getLogger("qfnb.local.engines")

#: llama-server's ``stop_type`` -> the platform's finish reason
_FINISH = {"limit": FINISH_LENGTH, "word": FINISH_STOP}
#: the shortest run of tokens a slot reuses from its cache where it moved in the prompt (llama-server
#: shifts their KV cells): the earlier cells after the oldest left the token budget, or after an
#: edit in an earlier cell, are not read again
CACHE_REUSE = 32

@dataclass(frozen=True)
class InfillAsk:
    """One completion: ``prefix`` and ``suffix`` around the cursor, ``extra`` context chunks as
    ``(filename, text)`` pairs (the most relevant last: nearest the prefix), at most ``max_tokens``
    generated, cut at any of ``stop``; ``key`` names the document (its slot keeps its prompt cache)."""

    prefix: str
    suffix: str = ""
    extra: tuple[tuple[str, str], ...] = ()
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    key: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_tokens <= MAX_COMPLETION_TOKENS:
            raise ValueError(f"max_tokens must be 1 to {MAX_COMPLETION_TOKENS}, got {self.max_tokens}")

    def body(self) -> dict[str, Any]:
        """llama-server's ``/infill`` fields (greedy: a suggestion is the model's best guess)."""
        return {"input_prefix": self.prefix, "input_suffix": self.suffix,
                "input_extra": [{"filename": name, "text": text} for name, text in self.extra],
                "n_predict": self.max_tokens, "temperature": 0.0, "top_k": 1, "stream": True,
                "cache_prompt": True, "n_cache_reuse": CACHE_REUSE, "stop": list(self.stop),
                "return_progress": False}


@runtime_checkable
class Infiller(Protocol):
    """An engine that fills in the middle (our llama-server's :class:`~.engine.LlamaEngine`):
    the face the completion route serves through, declared here beside the request it takes."""

    def infill(self, ask: InfillAsk) -> AsyncIterator[Delta]:
        """``ask`` answered, streamed; ``CannotServe`` when this engine's model cannot fill in the middle."""
        ...


async def infill(name: str, gate: LaneGate, leased: Callable[[], contextlib.AbstractAsyncContextManager[Endpoint]],
                 ask: InfillAsk) -> AsyncIterator[Delta]:
    """``ask`` answered by the engine ``name`` (its ``gate`` and ``leased`` endpoint), streamed as
    Deltas; the last carries the finish reason and usage."""
    async with leased() as target, gate.turn(INTERACTIVE, key=ask.key, group=target.group) as slot:
        body = {**ask.body(), **(target.extra or {}), "id_slot": slot}
        url = prompts.engine_root(target.base_url) + "/infill"
        for attempt in (1, 2):
            answered = False
            try:
                async with transport.client().stream("POST", url, json=body, headers=target.headers) as resp:
                    answered = True
                    if resp.status_code != 200:
                        raise transport.engine_error(name, resp.status_code, (await resp.aread())[:2000])
                    async for delta in _deltas(resp):
                        yield delta
                return
            except httpx.TransportError as exc:
                if attempt == 1 and not answered and transport.stale_connection(exc):
                    continue  # a pooled connection the engine had closed: nothing was read, send again
                raise EngineUnavailable(f"{name}: the engine did not answer the completion "
                                        f"({type(exc).__name__})") from exc


async def _deltas(resp: httpx.Response) -> AsyncIterator[Delta]:
    """llama-server's own stream (``{"content", "stop", ...}`` chunks) as Deltas."""
    decoder = SSEDecoder()
    pieces = 0
    async for text in resp.aiter_text():
        for item in decoder.feed(text):
            data = item.data  # the decoder parsed the JSON it could: anything else is no chunk of ours
            if not isinstance(data, dict):
                continue
            piece = str(data.get("content") or "")
            if not data.get("stop"):
                if piece:
                    pieces += 1
                    yield Delta(piece, None, 0, pieces)
                continue
            timings = data.get("timings") or {}
            yield Delta(piece, _FINISH.get(str(data.get("stop_type") or ""), FINISH_NORMAL),
                        int(data.get("tokens_evaluated") or 0), int(data.get("tokens_predicted") or pieces),
                        cached_tokens=int(timings.get("cache_n") or 0))
            return

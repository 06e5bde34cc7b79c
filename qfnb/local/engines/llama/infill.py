"""Fill in the middle on our own llama-server (``POST /infill``): code completion for an editor.

The text before and after the cursor and the context chunks (``input_extra``: a notebook's earlier
cells, the kernel's names in scope) go to llama-server as they are: it renders them with the model's
own FIM tokens (Qwen2.5-Coder's repo-level format: ``<|file_sep|>`` chunks, then
``<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>``) and cuts them to the slot's context.

A completion takes a turn in the engine's interactive lane, as a chat does (it never waits behind
batch traffic and never takes a batch row's slot), keyed by its document, so the slot that served
the last keystroke's completion serves the next and reads most of its prompt from its cache. It
streams; a reader that stops before the end (the user typed on, the client left) closes the
stream, and llama-server stops the slot's generation as its connection closes. It is admitted as every
generation is (:meth:`.engine.LlamaEngine.admission`: the gate's turn, the stall watchdog and compute
deadline, a send again after a restart going on from the text written), its stream read by
:func:`.transport.deltas` (llama-server's own chunks, ``{"content", "stop", ...}``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from qfnb.local.engines.base import Delta
from qfnb.protocol.wires.local.completion import MAX_COMPLETION_TOKENS

__all__ = ["InfillAsk", "Infiller"]

log = logging.getLogger("qfnb.local.engines")

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

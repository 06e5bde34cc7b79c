"""Code completion (fill in the middle) on the local platform: ``POST /qfnb/complete``.

The editor's side (qfnb's Jupyter server extension) sends the text around the cursor and its
context chunks; the daemon answers with the text to insert. One body shape for both sides, checked
once here: a field out of range is refused by name before anything runs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["COMPLETE_ROUTE", "COMPLETION_KIND", "MAX_COMPLETION_TOKENS", "MAX_CONTEXT_CHARS", "CompleteRequest",
           "ContextChunk"]

#: the daemon's completion route
COMPLETE_ROUTE = "/qfnb/complete"
#: the kind (ledger ``api``) of an editor's completion, local or cloud
COMPLETION_KIND = "inline-completion"
#: the most tokens one completion may ask for (a line or a short block)
MAX_COMPLETION_TOKENS = 256
#: the most characters of text one request carries (prefix, suffix and chunks each)
MAX_CONTEXT_CHARS = 64_000


class ContextChunk(BaseModel):
    """A piece of context beside the code being completed: a notebook's earlier cell, the kernel's
    names in scope; ``filename`` is what the model sees it as."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(max_length=200)
    text: str = Field(max_length=MAX_CONTEXT_CHARS)


class CompleteRequest(BaseModel):
    """One completion: the text before (``prefix``) and after (``suffix``) the cursor, ``extra``
    context chunks (the most relevant last), at most ``max_tokens`` generated, cut at any of
    ``stop``; ``key`` names the document (its engine slot keeps its prompt cache); ``model``: the
    platform's coder model when none is named."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(max_length=MAX_CONTEXT_CHARS)
    suffix: str = Field("", max_length=MAX_CONTEXT_CHARS)
    extra: list[ContextChunk] = Field(default_factory=list, max_length=64)
    max_tokens: int = Field(64, ge=1, le=MAX_COMPLETION_TOKENS)
    stop: list[str] = Field(default_factory=list, max_length=4)
    key: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=200)
    #: the answer as server-sent events: ``{"delta": piece}`` as the engine writes it, the last one also
    #: with the whole ``text``, ``finish``, ``model`` and ``usage`` (the editor shows the first tokens
    #: while the rest is written)
    stream: bool = False

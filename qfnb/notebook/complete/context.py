"""What a completion is asked with, and what comes back of it: the text around the cursor, the
notebook's earlier cells (most recent first, within a token budget) and the kernel's names in scope as
context chunks; where a suggestion stops (the current line, or a block); the cache key. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from qfnb._core.record.tokens import token_bound
from qfnb.notebook.complete.redact import redact
from qfnb.protocol.wires.local.completion import MAX_CONTEXT_CHARS

__all__ = [
    "CONTEXT_TOKENS",
    "PREFIX_CHARS",
    "SCOPE_FILE",
    "SUFFIX_CHARS",
    "FimRequest",
    "cell_chunks",
    "finish_suggestion",
    "stops_for",
]

#: the tokens (at most, :func:`~qfnb._core.record.tokens.token_bound`) of earlier cells sent as context
CONTEXT_TOKENS = 1024
#: the characters of the current cell kept before and after the cursor
PREFIX_CHARS, SUFFIX_CHARS = 4000, 1500
#: the context chunk that lists the kernel's names (the last one: nearest the code being written)
SCOPE_FILE = "kernel_names.py"
#: the typed start of a line (in characters) a suggestion that repeats it is cut after
_RETYPED = 3
#: a cell magic's body is no Python: such cells are left out of the context
_MAGIC = "%%"


@dataclass(frozen=True)
class FimRequest:
    """One request for a suggestion: the text around the cursor and the context chunks."""

    prefix: str
    suffix: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())
    max_tokens: int = 64

    @classmethod
    def of(cls, prefix: str, suffix: str, cells: Sequence[str] = (), scope: str = "", *,
           budget: int = CONTEXT_TOKENS, max_tokens: int = 64) -> FimRequest:
        """``prefix`` and ``suffix`` cut to what the model reads of them, ``cells`` (the notebook's
        earlier code cells, in order) within ``budget`` tokens, and the kernel's ``scope`` listing."""
        chunks = cell_chunks(cells, budget)
        if scope:
            chunks.append((SCOPE_FILE, scope[:MAX_CONTEXT_CHARS]))
        return cls(prefix[-PREFIX_CHARS:], suffix[:SUFFIX_CHARS], tuple(chunks), max_tokens)

    @property
    def stop(self) -> tuple[str, ...]:
        return stops_for(self.prefix)

    def redacted(self) -> FimRequest:
        """This request with secret-looking names' values and key-shaped values replaced
        (:func:`.redact.redact`): what a cloud model is sent."""
        return FimRequest(redact(self.prefix), redact(self.suffix),
                          tuple((name, redact(text)) for name, text in self.extra), self.max_tokens)

    def key(self, model: str) -> str:
        """The cache key: the model and everything it reads."""
        raw = json.dumps([model, self.prefix, self.suffix, self.extra, self.max_tokens], ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()

    def body(self, model: str | None, document: str | None) -> dict[str, object]:
        """The daemon's ``/qfnb/complete`` body (:class:`qfnb.protocol.wires.local.completion.CompleteRequest`)."""
        return {"prefix": self.prefix, "suffix": self.suffix, "max_tokens": self.max_tokens,
                "extra": [{"filename": n, "text": t} for n, t in self.extra], "stop": list(self.stop),
                "key": (document or "")[:200] or None, **({"model": model} if model else {})}

    def context_tokens(self) -> int:
        """What the request may cost at most: its texts' token bound and its output cap."""
        return (token_bound(self.prefix) + token_bound(self.suffix)
                + sum(token_bound(t) + 8 for _, t in self.extra) + self.max_tokens)


def cell_chunks(cells: Sequence[str], budget: int = CONTEXT_TOKENS) -> list[tuple[str, str]]:
    """The earlier cells as context chunks: the most recent first while they fit in ``budget``
    tokens (a cell magic's prose left out), given oldest first so the latest sits nearest the cursor."""
    chosen: list[tuple[str, str]] = []
    left = budget
    for index in range(len(cells) - 1, -1, -1):
        source = cells[index].strip()
        if not source or source.startswith(_MAGIC):
            continue
        cost = token_bound(source) + 8  # the chunk's file marker and name
        if cost > left:
            break
        left -= cost
        chosen.append((f"cell_{index + 1}.py", source + "\n"))
    return chosen[::-1]


#: a Markdown fence: the instruct-tuned coder sometimes closes (or opens) one after the code
FENCE = "```"


def stops_for(prefix: str) -> tuple[str, ...]:
    """Where the suggestion stops: at the end of the current line when the cursor is inside one,
    at the end of the block (a blank line) when it starts a line or follows an opening ``:``; and
    at a Markdown fence."""
    line = prefix.rsplit("\n", 1)[-1]
    if line.strip() and not line.rstrip().endswith(":"):
        return ("\n", FENCE)
    return ("\n\n", FENCE)


def finish_suggestion(text: str, prefix: str, suffix: str) -> str:
    """The suggestion as it is offered: cut to the current line or the block (as
    :func:`stops_for`), without trailing blank space, without the line's typed start when the model
    wrote the line again from its beginning (``print("…")`` after ``print``), and without what the
    text after the cursor already holds (a model that writes ``"city"]`` before an existing ``]``)."""
    for stop in stops_for(prefix):
        text = text.split(stop, 1)[0]
    text = text.rstrip()
    typed = prefix.rsplit("\n", 1)[-1].lstrip()
    if len(typed) >= _RETYPED and text.lstrip().startswith(typed):
        text = text.lstrip()[len(typed):]
    head = suffix.split("\n", 1)[0].strip()
    if head and text.endswith(head):
        text = text[: -len(head)]
    return text

"""One model turn, collected: what the Responses and the Messages answers (and their streams' last
events) are written from. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Turn"]


@dataclass
class Turn:
    """What the model answered, collected: its text, its tool calls (chat shape), why it stopped
    (``normal``/``stop``/``length``/``tool_calls``) and the token counts."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

"""One model turn, collected: what the Responses and the Messages answers (and their streams' last
events) are written from, and the ids they give their items. Pure data."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Turn", "new_id"]


def new_id(prefix: str) -> str:
    """An id like OpenAI's and Anthropic's (``msg_…``, ``fc_…``, ``call_…``, ``toolu_…``): the prefix and
    24 hex digits."""
    return prefix + secrets.token_hex(12)


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

"""Lenient typed views over a response body: ``resp.choices[0].message.content``.

A view reads the dict it wraps when asked and never raises: a missing or mistyped field reads
as its empty value (``""``, ``None``, ``[]``), as the platform's answers vary by model and
version. The dict stays the source of truth (``resp["choices"]`` reads it as it came).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Choice", "ChoiceMessage", "choices_of"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class ChoiceMessage:
    """One v2 ``message`` (whole answer) or ``delta`` (stream chunk)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    @property
    def role(self) -> str:
        return _text(self.raw.get("role"))

    @property
    def content(self) -> str:
        """The text ("" when absent, e.g. a tool call)."""
        return _text(self.raw.get("content"))

    @property
    def reasoning_content(self) -> str:
        return _text(self.raw.get("reasoning_content"))

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls = self.raw.get("tool_calls")
        return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []

    def __repr__(self) -> str:
        return f"ChoiceMessage({dict(self.raw)!r})"


class Choice:
    """One entry of a v2 answer's ``choices``."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    @property
    def index(self) -> int:
        value = self.raw.get("index")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def message(self) -> ChoiceMessage:
        return ChoiceMessage(_dict(self.raw.get("message")))

    @property
    def delta(self) -> ChoiceMessage:
        """A stream chunk's increment (``message`` is empty in a chunk)."""
        return ChoiceMessage(_dict(self.raw.get("delta")))

    @property
    def finish_reason(self) -> str | None:
        value = self.raw.get("finish_reason")
        return value if isinstance(value, str) else None

    def __repr__(self) -> str:
        return f"Choice({dict(self.raw)!r})"


def choices_of(body: Mapping[str, Any]) -> list[Choice]:
    """The ``choices`` of a body as views (``[]`` for a v1 answer, which has ``result``)."""
    raw = body.get("choices")
    return [Choice(c) for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []

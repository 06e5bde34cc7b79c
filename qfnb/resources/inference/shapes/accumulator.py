"""One answer added up from its pieces (no I/O): a stream's chunks, and the rounds of
``auto_concat_truncate``. Used by :class:`~qfnb.resources.ChatCompletion` and by ``%%qfchat``.

Within one round (one request) each chunk's ``usage`` is the running total, so the latest
wins; across rounds (continuations of a truncated answer) the rounds' usages add up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ChatAccumulator"]


class ChatAccumulator:
    """Text, usage and the truncation flag of one answer, fed chunk by chunk."""

    def __init__(self) -> None:
        self.text = ""
        #: the text of each finished round (what a continuation request sends back)
        self.rounds: list[str] = []
        self.truncated = False
        self.chunks = 0
        self._round = ""
        self._round_usage: dict[str, Any] = {}
        self._past_usage: dict[str, int] = {}

    def add(self, text: str = "", usage: Mapping[str, Any] | None = None, *, truncated: bool = False) -> str:
        """Take one chunk; returns its text."""
        self.chunks += 1
        self.text += text
        self._round += text
        if usage:
            self._round_usage = dict(usage)
        self.truncated = truncated
        return text

    def add_body(self, body: Mapping[str, Any]) -> str:
        """Take one chunk or response body (``result``, ``usage``, ``is_truncated``)."""
        usage = body.get("usage")
        return self.add(str(body.get("result") or ""), usage if isinstance(usage, Mapping) else None,
                        truncated=bool(body.get("is_truncated")))

    def end_round(self) -> None:
        """The current request ended: keep its text and add its usage to the totals."""
        self.rounds.append(self._round)
        for key, value in self._round_usage.items():
            if isinstance(value, int) and not isinstance(value, bool):
                self._past_usage[key] = self._past_usage.get(key, 0) + value
        self._round, self._round_usage = "", {}

    @property
    def usage(self) -> dict[str, Any]:
        """Usage of every finished round added up, plus the current round's latest."""
        total: dict[str, Any] = dict(self._past_usage)
        for key, value in self._round_usage.items():
            total[key] = total.get(key, 0) + value if isinstance(value, int) and not isinstance(value, bool) else value
        return total

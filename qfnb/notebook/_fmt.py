"""Small pure formatting helpers shared by the displays."""

from __future__ import annotations

import html

from qfnb._core.runtime.progress import fmt_duration as duration
from qfnb._core.runtime.progress import fmt_rate as rate

__all__ = ["duration", "esc", "rate"]


def esc(text: object) -> str:
    """HTML-escape anything (user text never reaches HTML unescaped)."""
    return html.escape(str(text), quote=True)

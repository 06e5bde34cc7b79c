"""Small pure formatting helpers shared by the displays."""

from __future__ import annotations

import html
import math


def duration(seconds: float | None) -> str:
    """``75.2 -> '01:15'``, ``3725 -> '1:02:05'``, ``None -> '?'``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def rate(per_second: float | None, unit: str = "it") -> str:
    if per_second is None or per_second <= 0 or not math.isfinite(per_second):
        return f"?{unit}/s"
    if per_second >= 1:
        return f"{per_second:.2f}{unit}/s"
    return f"{1 / per_second:.2f}s/{unit}"


def esc(text: object) -> str:
    """HTML-escape anything (user text never reaches HTML unescaped)."""
    return html.escape(str(text), quote=True)

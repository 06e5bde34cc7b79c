"""Small pure formatting helpers shared by the displays (HTML escaping: :mod:`qfnb.protocol.safe_html`)."""

from __future__ import annotations

from qfnb._core.runtime.progress import fmt_duration as duration
from qfnb._core.runtime.progress import fmt_rate as rate

__all__ = ["duration", "rate"]

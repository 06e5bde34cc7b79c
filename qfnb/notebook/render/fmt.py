"""Small pure formatting helpers shared by the displays (HTML escaping: :mod:`qfnb.protocol.safe_html`)."""

from __future__ import annotations

from qfnb._core.runtime.progress import fmt_duration as duration

__all__ = ["duration"]

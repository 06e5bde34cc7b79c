"""Words and number formats shared by the comparison and its report."""

from __future__ import annotations

import math

BETTER, WORSE, SAME, NO_DIFF, UNSURE, TOO_FEW = (
    "better", "worse", "identical", "no detectable difference", "inconclusive", "too few items")
#: a row whose winner collapsed (most of its answers degenerate): never a win
COLLAPSED = "collapsed: not a win"


def signed(x: float, digits: int) -> str:
    """``+0.63`` / ``−0.12`` (a real minus sign) / ``0.00``."""
    if x == 0:
        return f"{0:.{digits}f}"
    return ("+" if x > 0 else "\u2212") + f"{abs(x):.{digits}f}"


def digits_for(*values: float) -> int:
    """2 decimals, or 3 when every value is below 0.1; more (up to 6) while a value that is not 0
    would print as 0, so a CI bound just above 0 never reads as ``+0.00``."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    digits = 2 if finite and max(finite) >= 0.1 else 3
    while digits < 6 and any(0 < v < 0.5 * 10 ** -digits for v in finite):
        digits += 1
    return digits


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"

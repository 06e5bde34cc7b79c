"""What a keyed model call is doing on the local platform: the answer of ``GET /qfnb/calls/{key}``.

The platform follows each call it runs under an ``Idempotency-Key`` through its phases and answers,
to the credential that sent it, one JSON object (the field names are :data:`FIELDS`):

- ``phase``: ``received`` (not yet at an engine), ``loading`` (its model's engine starting),
  ``queued`` (waiting for an engine slot), ``generating`` (on a slot: reading its prompt, then
  writing), ``done`` (answered; a retry gets the kept answer), ``failed`` (an error answer);
- ``elapsedSeconds`` since the platform received it (to its end once done), ``loadingSeconds``,
  ``queuedSeconds``, ``generatingSeconds`` (since it got its slot), ``tokens`` generated so far.

:func:`describe` is the one sentence both sides say of it: the client adds it to the error of a call
it gave up on, so the error says what the platform was doing rather than only how long it heard
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["FIELDS", "Phase", "describe"]

Phase = Literal["received", "loading", "queued", "generating", "done", "failed"]

#: the answer's fields, in the order :func:`describe` reads them
FIELDS = ("phase", "elapsedSeconds", "loadingSeconds", "queuedSeconds", "generatingSeconds", "tokens")


def describe(progress: Mapping[str, Any]) -> str:
    """``generating: 212 tokens in 95 s after 40 s queued`` (what the platform had done of the call)."""
    phase = str(progress.get("phase") or "unknown")
    elapsed, tokens = _seconds(progress, "elapsedSeconds"), int(progress.get("tokens") or 0)
    waits = [f"{_seconds(progress, name):.0f} s {what}" for name, what in
             (("loadingSeconds", "loading its model"), ("queuedSeconds", "queued"))
             if _seconds(progress, name) >= 0.5]
    after = f" after {' and '.join(waits)}" if waits else ""
    if phase == "generating":
        if tokens == 0:
            return f"generating: reading its prompt for {_seconds(progress, 'generatingSeconds'):.0f} s{after}"
        return f"generating: {tokens} tokens in {_seconds(progress, 'generatingSeconds'):.0f} s{after}"
    if phase in ("done", "failed"):
        return f"{phase}: {tokens} tokens in {elapsed:.0f} s{after}"
    if phase in ("loading", "queued"):
        return f"{phase} for {_seconds(progress, phase + 'Seconds'):.0f} s of {elapsed:.0f} s"
    return f"{phase} {elapsed:.0f} s ago, not yet at an engine"


def _seconds(progress: Mapping[str, Any], name: str) -> float:
    value = progress.get(name)
    return float(value) if isinstance(value, (int, float)) else 0.0

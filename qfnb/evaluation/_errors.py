"""Errors raised by the evaluation layer."""

from __future__ import annotations

from qfnb.protocol import ProtocolError


def invalid(field: str, message: str) -> ProtocolError:
    """A bad argument, found before anything runs (``qfnb.errors.ValidationError``)."""
    try:
        from qfnb.errors import ValidationError
    except ImportError:  # pragma: no cover - the client layer is always present in a full install
        return ProtocolError(field, message)
    return ValidationError(field, message)


class EvaluationError(RuntimeError):
    """An evaluation could not finish (a platform task failed, every inference failed, ...)."""

"""Errors raised by the evaluation layer."""

from __future__ import annotations

from qfnb._core.errors import ValidationError


def invalid(field: str, message: str) -> ValidationError:
    """A bad argument, found before anything runs (``qfnb.errors.ValidationError``)."""
    return ValidationError(field, message)


class EvaluationError(RuntimeError):
    """An evaluation could not finish (a platform task failed, every inference failed, ...)."""

"""Argument checks shared by the magics (no IPython here)."""

from __future__ import annotations

import argparse

from qfnb.notebook.sampling import OPTIONS, SamplingOptions
from qfnb.protocol.limits import range_problem
from qfnb.protocol.ranges import RANGES


def sampling_options(args: argparse.Namespace, *, temperature: float | None = None) -> SamplingOptions:
    """The typed sampling fields of a parsed magic line, each checked against the range the
    platform applies (``ValueError`` naming the flag otherwise). ``temperature``: the value when
    ``-t`` is not given (``%config QfnbMagics.temperature``)."""
    values = {option.field: getattr(args, option.field, None) for option in OPTIONS}
    if values["temperature"] is None:
        values["temperature"] = temperature
    for option in OPTIONS:
        problem = range_problem(values[option.field], *RANGES[option.field])
        if problem:
            raise ValueError(f"{option.label} {problem}")
    return SamplingOptions(**values)


def split_csv(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (repeatable, comma-separated options)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def var_problem(name: str | None, option: str) -> str | None:
    """What is wrong with a variable name given to ``option`` (``-o``), or None."""
    if name is not None and not name.isidentifier():
        return f"{option} must be a Python identifier, got {name!r}"
    return None

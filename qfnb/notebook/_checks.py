"""Argument checks shared by the magics."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.core.error import UsageError

from qfnb.notebook.magic_options import IMAGE_OPTIONS, ImageOptions, MagicOption
from qfnb.notebook.sampling import OPTIONS, SamplingOptions
from qfnb.protocol.limits import range_problem
from qfnb.protocol.ranges import RANGES, TEXT2IMAGE_RANGES
from qfnb.resources.structured import AnswerSchema, SchemaError, answer_schema


def sampling_options(args: argparse.Namespace, *, temperature: float | None = None) -> SamplingOptions:
    """The typed sampling fields of a parsed magic line, each checked against the range the
    platform applies (``ValueError`` naming the flag otherwise). ``temperature``: the value when
    ``-t`` is not given (``%config QfnbMagics.temperature``)."""
    if getattr(args, "temperature", None) is None:
        args = argparse.Namespace(**{**vars(args), "temperature": temperature})
    return SamplingOptions(**_checked(args, OPTIONS, RANGES))


def answer_shape(user_ns: Mapping[str, Any], json: bool, schema: str | None) -> AnswerSchema | None:
    """What ``--json`` / ``--schema NAME`` ask the answers to be (``UsageError`` naming the flag
    for a bad NAME, before anything is sent)."""
    if json and schema:
        raise UsageError("--json and --schema both given: --schema already asks for a JSON object")
    if json:
        return AnswerSchema(name="answer", schema=None)
    if not schema:
        return None
    if schema not in user_ns:
        raise UsageError(f"--schema {schema}: no variable {schema!r} in the notebook (define a pydantic model "
                         "class or a JSON-schema dict first)")
    try:
        return answer_schema(user_ns[schema], schema)
    except SchemaError as exc:
        raise UsageError(f"--schema {schema}: {exc}") from None


def image_options(args: argparse.Namespace) -> ImageOptions:
    """The typed Text2Image fields of a parsed ``%qfimage`` line, checked as :func:`sampling_options`."""
    return ImageOptions(**_checked(args, IMAGE_OPTIONS, TEXT2IMAGE_RANGES))


def _checked(args: argparse.Namespace, options: Sequence[MagicOption],
             ranges: Mapping[str, tuple[float, float, bool, bool]]) -> dict[str, Any]:
    """Each option's value on ``args`` (None when absent), those with a range checked against it."""
    values = {option.field: getattr(args, option.field, None) for option in options}
    for option in options:
        problem = range_problem(values[option.field], *ranges[option.field]) if option.field in ranges else None
        if problem:
            raise ValueError(f"{option.label} {problem}")
    return values


def split_csv(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (repeatable, comma-separated options)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def check_var(name: str | None, option: str) -> None:
    """A variable name given to ``option`` (``-o``) must be a Python identifier (a ``UsageError`` otherwise)."""
    if name is not None and not name.isidentifier():
        raise UsageError(f"{option} must be a Python identifier, got {name!r}")

"""Argument checks shared by the magics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from IPython.core.error import UsageError

from qfnb.notebook.magic_options import IMAGE_OPTIONS, ImageOptions, MagicOption
from qfnb.notebook.sampling import OPTIONS, SamplingOptions
from qfnb.protocol.limits import range_problem
from qfnb.protocol.wires.chat.ranges import RANGES, TEXT2IMAGE_RANGES
from qfnb.resources.structured import AnswerSchema, SchemaError, answer_schema


def sampling_options(asked: SamplingOptions, *, temperature: float | None = None) -> SamplingOptions:
    """The sampling fields a magic line gave (its typed arguments' ``sampling``), each checked against
    the range the platform applies (``ValueError`` naming the flag otherwise). ``temperature``: the
    value when ``-t`` is not given (``%config QfnbMagics.temperature``)."""
    if asked.temperature is None:
        asked = replace(asked, temperature=temperature)
    return SamplingOptions(**_checked(asdict(asked), OPTIONS, RANGES))


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


def image_options(asked: ImageOptions) -> ImageOptions:
    """The Text2Image fields a ``%qfimage`` line gave, checked as :func:`sampling_options`."""
    return ImageOptions(**_checked(asdict(asked), IMAGE_OPTIONS, TEXT2IMAGE_RANGES))


def _checked(given: Mapping[str, Any], options: Sequence[MagicOption],
             ranges: Mapping[str, tuple[float, float, bool, bool]]) -> dict[str, Any]:
    """Each option's value in ``given`` (None when absent), those with a range checked against it."""
    values = {option.field: given.get(option.field) for option in options}
    for option in options:
        problem = range_problem(values[option.field], *ranges[option.field]) if option.field in ranges else None
        if problem:
            raise ValueError(f"{option.label} {problem}")
    return values


def split_csv(values: Sequence[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (repeatable, comma-separated options)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def check_var(name: str | None, option: str) -> None:
    """A variable name given to ``option`` (``-o``) must be a Python identifier (a ``UsageError`` otherwise)."""
    if name is not None and not name.isidentifier():
        raise UsageError(f"{option} must be a Python identifier, got {name!r}")

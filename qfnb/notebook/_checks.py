"""Argument checks shared by the magics (no IPython here)."""

from __future__ import annotations


def sampling_problem(temperature: float | None, max_tokens: int | None) -> str | None:
    """What is wrong with ``-t/--temperature`` / ``--max-tokens``, or None when both are fine."""
    if temperature is not None and not 0 < temperature <= 1:
        return f"-t/--temperature must be in (0, 1], got {temperature}"
    if max_tokens is not None and max_tokens < 1:
        return f"--max-tokens must be a positive integer, got {max_tokens}"
    return None


def split_csv(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (repeatable, comma-separated options)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def var_problem(name: str | None, option: str) -> str | None:
    """What is wrong with a variable name given to ``option`` (``-o``), or None."""
    if name is not None and not name.isidentifier():
        return f"{option} must be a Python identifier, got {name!r}"
    return None

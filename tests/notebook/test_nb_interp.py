"""Prompt interpolation: {var} replaced, every other brace kept."""

from __future__ import annotations

import pytest

from qfnb.notebook._interp import InterpolationError, interpolate

NS = {"x": 3, "d": {"k": "v", 1: "one"}, "items": [1, 2, 3], "In": ["", "a = 1"], "s": "{x}"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{x}", "3"),
        ("value={x}!", "value=3!"),
        ('{"a": 1}', '{"a": 1}'),
        ("{}", "{}"),
        ("{{x}}", "{x}"),
        ("{d['k']} {d[\"k\"]} {d[1]} {items[-1]} {In[1]}", "v v one 3 a = 1"),
        ("{x.real}", "3"),
        ("def f(d): return {k: v for k, v in d.items()}", "def f(d): return {k: v for k, v in d.items()}"),
        ("{x:.2f}", "{x:.2f}"),
        ("{s}", "{x}"),  # values are not re-interpolated
        ("const o = {a: {b: 1}};", "const o = {a: {b: 1}};"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, NS) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [("{missing}", "no variable named 'missing'"), ("{items[9]}", "IndexError"), ("{x.__class__}", "dunder"),
     ("a {x} b {topic} c", "{topic}")],
)
def test_unfillable_placeholder_is_an_error_naming_it(text: str, named: str) -> None:
    with pytest.raises(InterpolationError, match=named.replace("[", r"\[").replace("{", r"\{")):
        interpolate(text, NS)

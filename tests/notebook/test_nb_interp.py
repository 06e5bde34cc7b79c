"""Prompt interpolation: {var} replaced, every other brace kept."""

from __future__ import annotations

import pytest

from qfnb.notebook._interp import interpolate

NS = {"x": 3, "d": {"k": "v", 1: "one"}, "items": [1, 2, 3], "In": ["", "a = 1"], "s": "{x}"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{x}", "3"),
        ("value={x}!", "value=3!"),
        ('{"a": 1}', '{"a": 1}'),
        ("{}", "{}"),
        ("{{x}}", "{x}"),
        ("{missing}", "{missing}"),
        ("{d['k']} {d[\"k\"]} {d[1]} {items[-1]} {In[1]}", "v v one 3 a = 1"),
        ("{items[9]}", "{items[9]}"),
        ("{x.real}", "3"),
        ("{x.__class__}", "{x.__class__}"),
        ("def f(d): return {k: v for k, v in d.items()}", "def f(d): return {k: v for k, v in d.items()}"),
        ("{x:.2f}", "{x:.2f}"),
        ("{s}", "{x}"),  # values are not re-interpolated
        ("const o = {a: {b: 1}};", "const o = {a: {b: 1}};"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, NS) == expected

"""Your own metric (``--metrics NAME`` of a notebook function, ``FunctionEvaluator``): a number, a
list of numbers or a dict of them are columns; anything else stops the run naming the metric."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qfnb.evaluation import FunctionEvaluator


def _scores(*values: Any) -> list[float]:
    return [float(v) for v in values]


def test_a_metric_returns_a_number_a_list_or_a_dict() -> None:
    def overlap(input: Any, reference: str, output: str) -> float:
        return float(reference in output)

    def parts(input: Any, reference: str, output: str) -> list[float]:
        return _scores(reference in output, len(output) / 10)

    assert FunctionEvaluator(overlap).evaluate("q", "ab", "xab") == {"overlap": 1.0}
    assert FunctionEvaluator(parts).evaluate("q", "ab", "xab") == {"parts_1": 1.0, "parts_2": 0.3}
    assert FunctionEvaluator(lambda i, r, o: [0.5], name="one").evaluate("q", "r", "o") == {"one": 0.5}
    assert FunctionEvaluator(lambda i, r, o: np.array([1, 2]), name="arr").evaluate("q", "r", "o") == {
        "arr_1": 1.0, "arr_2": 2.0}
    assert FunctionEvaluator(lambda i, r, o: {"a": 1, "b": 0.5}, name="d").evaluate("q", "r", "o") == {
        "a": 1.0, "b": 0.5}


@pytest.mark.parametrize(("value", "says"), [([], "returned an empty list"), ([1, "x"], "'bad_2' is 'x'"),
                                             ("0.5", "'bad' is '0.5'"), ([float("nan")], "'bad' is nan")])
def test_a_metric_that_returns_no_numbers_is_named(value: Any, says: str) -> None:
    with pytest.raises(ValueError, match=f"metric 'bad'.*{says}"):
        FunctionEvaluator(lambda i, r, o: value, name="bad").evaluate("q", "r", "o")

"""eval_sequential: stops generating once decided; a re-run with the answer store replays it with 0 calls."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qfnb.errors import ValidationError
from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator
from qfnb.evaluation.runs.answers import AnswerStore
from qfnb.evaluation.runs.sequential_eval import eval_sequential

ITEMS = 200
FRAME = pd.DataFrame({"input": [f"what is {i} + 1?" for i in range(ITEMS)],
                      "reference": [str(i + 1) for i in range(ITEMS)]})


class Counter:
    """A model as a callable: right on ``right_every`` items out of 10, counting its calls."""

    def __init__(self, right_every: int) -> None:
        self.right_every, self.calls = right_every, 0

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        n = int(prompt.split()[2])
        return str(n + 1) if n % 10 < self.right_every else "no idea"


class Good(Counter):  # a class each: the answer store tells callables apart by their qualified name
    def __init__(self) -> None:
        super().__init__(9)


class Bad(Counter):
    def __init__(self) -> None:
        super().__init__(3)


def _run(good: Counter, bad: Counter, store: Path) -> object:
    manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator(metric_name="exact_match")])
    return eval_sequential(manager, {"good": good, "bad": bad}, FRAME, model="good", baseline="bad",
                           metric="exact_match", bounds=(0.0, 1.0), min_difference=0.2,
                           store=AnswerStore(store))


def test_a_clear_difference_stops_early_and_replays_without_calls(tmp_path: Path) -> None:
    good, bad = Good(), Bad()
    result = _run(good, bad, tmp_path / "answers.sqlite")
    rec = result.sequential  # type: ignore[attr-defined]
    assert rec.decided_at is not None and rec.winner == "a" and rec.generated < ITEMS / 2
    assert good.calls == bad.calls == rec.generated
    assert rec.calls_saved == 2 * (ITEMS - rec.generated)
    assert f"decided after {rec.decided_at} of {ITEMS} items; {rec.calls_saved} calls saved" in rec.sentence
    assert "good beats bad on exact_match" in rec.sentence
    samples = result.samples  # type: ignore[attr-defined]
    assert sorted(set(samples["index"])) == sorted(rec.order[:rec.generated])  # the dataset's own indices
    assert all(samples.loc[samples["llm"] == "good", "exact_match"].notna())
    # Run All again: the same order, every answer from the store, the same decision
    again_good, again_bad = Good(), Bad()
    replay = _run(again_good, again_bad, tmp_path / "answers.sqlite").sequential  # type: ignore[attr-defined]
    assert again_good.calls == again_bad.calls == 0
    assert (replay.order, replay.decided_at, replay.winner, replay.p_value) == (rec.order, rec.decided_at,
                                                                                rec.winner, rec.p_value)


def test_two_models_only(tmp_path: Path) -> None:
    manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    with pytest.raises(ValidationError, match="exactly two models"):
        eval_sequential(manager, {"good": Good()}, FRAME, model="good", baseline="bad", metric="exact_match",
                        bounds=(0.0, 1.0))

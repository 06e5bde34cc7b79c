"""Each evaluation item is a span in the data dir's trace table (issue 56): the model tag, the item's
index and repeat, its scores; the item's call to the local platform nests under it (``traceparent``),
for a model resource's batch and for a plain function alike."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from qfnb._core.record.traces import read_spans
from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator
from qfnb.resources import ChatCompletion
from tests.fakes.local_platform import ServedPlatform, served_platform

DATA = [{"prompt": "one", "response": "1"}, {"prompt": "two", "response": "2"}, {"prompt": "three", "response": "3"}]


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    data = tmp_path / "data"
    monkeypatch.setenv("QFNB_DATA_DIR", str(data))  # the client's trace table is the platform's, as embedded
    with served_platform(data) as platform:
        platform.as_default_backend(monkeypatch)
        yield platform


def shouting(prompt: str) -> str:
    """A function under evaluation: it asks the model and shouts the answer."""
    return str(ChatCompletion().do(messages=[{"role": "user", "content": prompt}])["result"]).upper()


def test_each_item_is_a_span_with_its_scores_and_its_call_nests_under_it(served: ServedPlatform) -> None:
    manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    result = manager.eval({"tiny": ChatCompletion(model="Tiny-Chat"), "loud": shouting}, DATA, worker_num=2,
                          repeats=2)
    served.app.state.platform.meter.sink.flush()
    spans = read_spans(last=100)
    items = {s.span_id: s for s in spans if s.operation == "evaluate"}
    assert Counter(s.model for s in items.values()) == Counter({"tiny": 6, "loud": 6})  # 3 items x 2 repeats
    samples = result.samples
    for row in samples.itertuples():
        (span,) = [s for s in items.values() if s.model == row.llm and s.attributes()["qfnb.eval.index"] == row.index
                   and s.attributes()["qfnb.eval.repeat"] == row.repeat]
        assert span.attributes()["qfnb.eval.score.accuracy"] == row.accuracy
        assert span.attributes()["gen_ai.operation.name"] == "evaluate" and span.status == 200
    calls = [s for s in spans if s.operation == "chat"]
    assert len(calls) == 12
    assert Counter(c.parent_id for c in calls) == Counter(dict.fromkeys(items, 1))  # one call under each item
    for call in calls:
        parent = items[call.parent_id]
        assert call.trace_id == parent.trace_id and parent.started <= call.started
        assert call.started + call.duration_s <= parent.started + parent.duration_s + 1e-3


def test_recorded_answers_are_items_too_with_no_call(served: ServedPlatform) -> None:
    frame = [{**row, "kept": row["response"] if i else "wrong"} for i, row in enumerate(DATA)]
    EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval(dataset=frame, recorded={"kept": "kept"})
    spans = read_spans(last=100)
    scores = sorted((s.attributes()["qfnb.eval.index"], s.attributes()["qfnb.eval.score.accuracy"])
                    for s in spans if s.operation == "evaluate")
    assert scores == [(0, 0.0), (1, 1.0), (2, 1.0)]
    assert all(s.operation == "evaluate" and s.duration_s == 0 for s in spans)  # no model was called

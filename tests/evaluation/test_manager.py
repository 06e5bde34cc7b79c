"""EvaluationManager local path: inference, evaluators, summaries, result tables and display."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from qfnb.evaluation import (
    BleuEvaluator,
    EvaluationError,
    EvaluationManager,
    ExactMatchEvaluator,
    LocalEvaluator,
    ManualEvaluator,
    RougeEvaluator,
)
from qfnb.protocol import ProtocolError

DATA = [
    {"prompt": "Capital of France?", "response": [["Paris"]]},
    {"prompt": "2+2=?", "response": [["4"]]},
    {"prompt": "中国的首都是哪里？", "response": [["北京"]]},
]
ANSWERS = {"Capital of France?": "Paris.", "2+2=?": "4", "中国的首都是哪里？": "北京"}


def oracle(prompt: str) -> str:
    return ANSWERS[prompt]


async def wrong(prompt: str) -> str:
    return "I don't know"


class RecordingProgress:
    """A Contract 8 progress callback that records what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_start(self, total: int | None) -> None:
        self.events.append(("start", total))

    def on_result(self, index: int, ok: bool) -> None:
        self.events.append(("result", index, ok))

    def on_close(self) -> None:
        self.events.append(("close",))


class LengthEvaluator(LocalEvaluator):
    """A user-defined evaluator (sync evaluate, default summarize)."""

    def evaluate(self, input: Any, reference: str, output: str) -> dict[str, Any]:
        return {"out_len": len(output)}


async def test_eval_two_models() -> None:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(), LengthEvaluator()])
    progress = RecordingProgress()
    result = await em.aeval({"oracle": oracle, "wrong": wrong}, DATA, progress=progress)
    assert result.metrics["oracle"] == {"accuracy": 1.0, "out_len": pytest.approx((6 + 1 + 2) / 3)}
    assert result.metrics["wrong"]["accuracy"] == 0.0
    assert list(result.metrics_df.index) == ["oracle", "wrong"]
    assert list(result.metrics_df.columns) == ["accuracy", "out_len"]
    wide = result.samples_df
    assert wide.shape == (3, 2 + 2 * 3)
    assert list(wide.columns) == ["input", "reference", "oracle/output", "oracle/accuracy", "oracle/out_len",
                                  "wrong/output", "wrong/accuracy", "wrong/out_len"]
    assert wide["reference"].tolist() == ["Paris", "4", "北京"]
    assert wide["oracle/output"].tolist() == ["Paris.", "4", "北京"]
    assert len(result.samples) == 6 and set(result.samples["llm"]) == {"oracle", "wrong"}
    # 2 models x 3 rows, inference + 2 evaluators: every step reported once, in one bar
    assert progress.events[0] == ("start", 18) and progress.events[-1] == ("close",)
    assert sorted(e[1] for e in progress.events[1:-1]) == list(range(18))


async def test_one_default_bar_in_a_notebook_and_none_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import qfnb._core.runtime.progress as progress_mod

    made: list[Any] = []

    class Recorded(progress_mod.Progress):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(mode="off", **kwargs)
            made.append(self)

    monkeypatch.setattr(progress_mod, "in_notebook_kernel", lambda: True)
    monkeypatch.setattr(progress_mod, "Progress", Recorded)
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    await em.aeval({"oracle": oracle, "wrong": wrong}, DATA)
    assert len(made) == 1 and made[0].snapshot().done == 12  # one bar: 2 models x 3 rows x (infer + 1)
    made.clear()
    await em.aeval({"oracle": oracle}, DATA, progress=False)
    assert made == []


async def test_failed_inference_rows_are_kept_but_not_scored() -> None:
    def flaky(prompt: str) -> str:
        if prompt == "2+2=?":
            raise RuntimeError("boom")
        return ANSWERS[prompt]

    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    result = await em.aeval([flaky], DATA)
    row = result.samples.set_index("index").loc[1]
    assert "boom" in row["error"] and pd.isna(row["accuracy"])
    assert result.metrics["flaky"] == {"accuracy": 1.0}  # mean over the two scored rows
    assert "flaky/error" in result.samples_df.columns

    def broken(prompt: str) -> str:
        raise RuntimeError("down")

    with pytest.raises(EvaluationError, match="every inference failed"):
        await em.aeval([broken], DATA)


async def test_pre_processors_and_duplicate_tags() -> None:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(normalized=False)],
                           pre_processors=[lambda out, input, reference: out.rstrip(".")])
    result = await em.aeval([oracle, oracle], DATA)
    assert list(result.metrics) == ["oracle", "oracle#2"]
    assert result.metrics["oracle"]["accuracy"] == 1.0


async def test_eval_only_with_llm_column_and_text_metrics() -> None:
    frame = pd.DataFrame({
        "llm": ["a", "a", "b", "b"],
        "question": ["q1", "q2", "q1", "q2"],
        "answer": ["the cat sat on the mat", "我爱北京天安门", "the cat sat on the mat", "我爱北京天安门"],
        "prediction": ["the cat sat on the mat", "我爱北京天安门", "a dog", "我爱上海"],
    })
    em = EvaluationManager(local_evaluators=[BleuEvaluator(), RougeEvaluator()])
    result = await em.aeval_only(frame, llm_column="llm")
    assert result.metrics["a"]["bleu4"] == pytest.approx(1.0)
    assert result.metrics["a"]["rouge_l"] == pytest.approx(1.0)
    assert result.metrics["b"]["rouge_1"] < 0.5
    assert list(result.metrics_df.columns) == ["bleu4", "rouge_1", "rouge_2", "rouge_l"]
    assert result.samples_df.shape == (2, 2 + 2 * 5)


async def test_eval_only_reads_the_columns_a_run_over_conversations_writes() -> None:
    """``Dataset.test_using_llm`` over a file of conversations gives ``input_chats``, ``llm_output`` and
    ``expected_output`` (the official names): scored without naming a column."""
    chats = [[{"role": "user", "content": "2+2=?"}], [{"role": "user", "content": "1+1?"}]]
    frame = pd.DataFrame({"input_chats": chats, "llm_output": ["4", "3"], "expected_output": ["4", "2"]})
    result = await EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).aeval_only(frame)
    assert result.samples_df["reference"].tolist() == ["4", "2"]
    assert result.metrics["model"]["accuracy"] == 0.5


async def test_manual_queue_then_refresh() -> None:
    manual = ManualEvaluator()
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(), manual])
    result = await em.aeval({"m": oracle}, DATA)
    assert result.metrics["m"] == {"accuracy": 1.0}  # nothing scored yet
    assert len(manual.pending()) == 3
    manual.submit("m:0", 4)
    manual.submit("m:2", 2)
    result.refresh()
    assert result.metrics["m"]["score"] == pytest.approx(3.0)
    assert result.samples_df["m/score"].tolist()[0] == 4.0


def test_errors_before_anything_runs() -> None:
    calls: list[str] = []

    def spy(prompt: str) -> str:
        calls.append(prompt)
        return "x"

    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    with pytest.raises(ProtocolError) as info:
        em.eval([spy], [{"text": "no prompt column"}])
    assert info.value.field == "input_column"
    with pytest.raises(ProtocolError) as info:
        em.eval([spy], DATA, input_column="missing")
    assert info.value.field == "input_column"
    with pytest.raises(ProtocolError) as info:
        em.eval([], DATA)
    assert info.value.field == "llms"
    with pytest.raises(ProtocolError) as info:
        em.eval([42], DATA)
    assert info.value.field == "llms"
    with pytest.raises(ProtocolError) as info:
        em.eval_only(DATA)  # no output column
    assert info.value.field == "output_column"
    assert calls == []


def test_sync_shell_and_display() -> None:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(), RougeEvaluator()])
    result = em.eval({"oracle": oracle, "wrong": wrong}, DATA)
    html = result._repr_html_()
    assert "<table" in html and "oracle" in html and "rouge_l" in html and "Samples" in html
    assert "oracle" in repr(result) and "1.0000" in repr(result)
    fig = result.plot()
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["accuracy", "rouge_1", "rouge_2", "rouge_l"]
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [1.0, 0.0]
    ds = result.result_dataset
    assert len(ds) == 6 and "accuracy" in ds.columns

"""``%qfeval``'s deciding options against the real embedded platform with real local models (marked
``real_model``): two prompt variants with a notebook-function metric, a judge calibrated on 20 of
your labels, and a sequential comparison of two clearly different models that stops early and
replays with no model call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qfnb.resources import ChatCompletion

pytestmark = pytest.mark.real_model

CHAT = "Qwen2.5-Coder-0.5B-Instruct"
BASE = "Gemma-3-270M"  # a base model: it does not answer questions before a fine-tune
JUDGE = "Qwen2.5-Coder-1.5B-Instruct"  # not a candidate: a model never judges its own answers
SUMS = [{"prompt": f"What is {a} + {b}? Answer with the number only.", "response": str(a + b)}
        for a, b in [(2, 3), (4, 4), (1, 6), (3, 5), (7, 2), (6, 3), (5, 5), (2, 9), (8, 1), (4, 3), (9, 9), (3, 3),
                     (6, 6), (1, 1), (7, 7), (2, 2), (5, 4), (8, 8), (1, 9), (6, 2), (3, 4), (5, 2), (4, 1), (7, 1)]]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def says_the_number(input: str, reference: str, output: str) -> float:
    """A notebook metric: the reference number appears in the answer."""
    return float(reference.strip() in output)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The items each abatch_do sends to a model (a replay sends none)."""
    seen: list[str] = []
    original = ChatCompletion.abatch_do

    async def counting(self: ChatCompletion, inputs: Any = None, **kwargs: Any) -> Any:
        seen.extend(str(getattr(self, "model", "")) for _ in list(inputs or []))
        return await original(self, inputs, **kwargs)

    monkeypatch.setattr(ChatCompletion, "abatch_do", counting)
    return seen


def test_two_prompts_and_a_notebook_metric_on_a_real_model(ip, embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "sums.jsonl", SUMS[:4])
    ip.user_ns["says_the_number"] = says_the_number
    report = ip.run_line_magic(
        "qfeval", f"--prompts 'plain={{input}},words=Write the answer as an English word, not digits: {{input}}' "
                  f"--model {CHAT} --dataset {data} --metrics exact_match,says_the_number --compare plain "
                  "-t 0.01 --max-tokens 12 -o res")
    res = ip.user_ns["res"]
    assert res.samples["error"].isna().all(), res.samples["error"].tolist()
    assert list(res.metrics_df.index) == ["plain", "words"] and "says_the_number" in report.metrics.columns
    plain, words = res.samples_df["plain/output"].tolist(), res.samples_df["words/output"].tolist()
    assert plain != words, (plain, words)  # the prompt reached the model
    assert res.metrics["plain"]["says_the_number"] >= 0.5, plain  # it adds small numbers
    assert report.comparison.row("words", "says_the_number").n == 4


def test_a_judge_calibrated_on_20_labels(ip, embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = SUMS[:20]
    data = write_jsonl(tmp_path / "sums.jsonl", rows)
    # your labels: 5 for each right sum, 1 otherwise (what the judge should have said), read from a file
    ip.run_line_magic("qfeval", f"--models {CHAT} --dataset {data} --metrics exact_match -t 0.01 --max-tokens 8 "
                                "-o answers")
    outputs = ip.user_ns["answers"].samples_df[f"{CHAT}/output"].tolist()
    labels = write_jsonl(tmp_path / "labels.jsonl", [
        {"input": r["prompt"], "label": 5 if r["response"] in out else 1}
        for r, out in zip(rows, outputs, strict=True)])
    report = ip.run_line_magic("qfeval", f"--models {CHAT} --dataset {data} --metrics exact_match --judge {JUDGE} "
                                         f"--calibrate {labels} -t 0.01 --max-tokens 8")
    text = "\n".join(report.judge_notes)
    assert f"judge {JUDGE} on judge_score vs your labels of {CHAT}" in text, text
    assert "calibrated to your labels" in text, text


def test_sequential_stops_early_and_replays_with_no_call(ip, embedded, tmp_path: Path, asked: list[str]) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "sums.jsonl", SUMS)
    line = (f"--models {CHAT},{BASE} --dataset {data} --metrics exact_match --compare {BASE} --sequential 0.4 "
            "--workers 2 -t 0.01 --max-tokens 6")
    report = ip.run_line_magic("qfeval", line)
    rec = report.sequential
    assert rec.winner == "a" and rec.decided_at is not None, rec.sentence
    assert rec.generated <= len(SUMS) // 2, rec.sentence  # well before the data set's end
    assert len(asked) == 2 * rec.generated
    asked.clear()
    again = ip.run_line_magic("qfeval", line)
    assert asked == [] and (again.sequential.order, again.sequential.decided_at) == (rec.order, rec.decided_at)

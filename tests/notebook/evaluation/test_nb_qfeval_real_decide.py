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
    """What each abatch_do sends to a model, one entry an item (a replay sends none)."""
    seen: list[str] = []
    original = ChatCompletion.abatch_do

    async def counting(self: ChatCompletion, inputs: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("body_list") is not None:  # items keyed for reuse after a restart: one body an item
            bodies = list(kwargs.pop("body_list"))
            seen.extend(json.dumps(b["messages"], ensure_ascii=False) for b in bodies)
            return await original(self, body_list=bodies, **kwargs)
        items = list(inputs or [])
        seen.extend(json.dumps(i, ensure_ascii=False) for i in items)
        return await original(self, items, **kwargs)

    monkeypatch.setattr(ChatCompletion, "abatch_do", counting)
    return seen


def test_two_prompts_and_a_notebook_metric_on_a_real_model(ip, embedded, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           asked: list[str]) -> None:
    data = write_jsonl(tmp_path / "sums.jsonl", SUMS[:4])
    ip.user_ns["says_the_number"] = says_the_number
    report = ip.run_line_magic(
        "qfeval", f"--prompts 'plain={{input}},words=Write the answer as an English word, not digits: {{input}}' "
                  f"--model {CHAT} --dataset {data} --metrics exact_match,says_the_number --compare plain "
                  "-t 0.01 --max-tokens 12 -o res")
    res = ip.user_ns["res"]
    assert res.samples["error"].isna().all(), res.samples["error"].tolist()
    assert list(res.metrics_df.index) == ["plain", "words"] and "says_the_number" in report.metrics.columns
    assert len(asked) == 8 and sum("Write the answer as an English word" in a for a in asked) == 4  # each variant
    plain = res.samples_df["plain/output"].tolist()
    assert res.metrics["plain"]["says_the_number"] >= 0.5, plain  # it adds small numbers
    assert report.comparison.row("words", "says_the_number").n == 4


def half_right(prompt: str, **options: Any) -> str:
    """A candidate as a notebook function: right on even sums, wrong on odd ones."""
    a, b = (int(w) for w in prompt.split("What is ", 1)[1].split("?", 1)[0].split(" + "))
    return str(a + b) if (a + b) % 2 == 0 else str(a + b + 1)


def test_a_judge_calibrated_on_20_labels(ip, embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = SUMS[:20]
    data = write_jsonl(tmp_path / "sums.jsonl", rows)
    ip.user_ns["half_right"] = half_right
    # your labels, from a file: 5 for a right sum, 0 for a wrong one (on the judge's 0-5 scale)
    labels = write_jsonl(tmp_path / "labels.jsonl", [
        {"input": r["prompt"], "label": 5 if half_right(r["prompt"]) == r["response"] else 0} for r in rows])
    report = ip.run_line_magic("qfeval", f"--models half_right --dataset {data} --metrics exact_match --judge {CHAT} "
                                         f"--calibrate {labels}")
    text = "\n".join(report.judge_notes)
    assert f"judge {CHAT} on judge_score vs your labels of half_right" in text, text
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

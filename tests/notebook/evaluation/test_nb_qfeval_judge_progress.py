"""``%qfeval``'s bar moves while a judge scores (issue 58): it counts the generations, then each
answer the judge has scored, as each is scored (a notebook-function judge, no model; the local
platform's app with engine doubles, in process)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": p, "response": [["x"]]} for p in ("first", "second", "the slow one")]
OTHERS = len(ROWS) - 1


class Bar:
    """A Contract 8 callback that records what the bar was told."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.results: list[tuple[int, bool]] = []
        self.closed = False
        self.others_judged = threading.Event()

    def on_start(self, total: int | None) -> None:
        self.total = total

    def on_result(self, index: int, ok: bool) -> None:
        self.results.append((index, ok))
        if sum(i >= len(ROWS) for i, _ in self.results) >= OTHERS:
            self.others_judged.set()

    def on_close(self) -> None:
        self.closed = True


def test_the_bar_counts_each_answer_as_the_judge_scores_it(ip, local_platform: ServedPlatform,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    local_platform.set_env(monkeypatch, QIANFAN_LLM_API_RETRY_COUNT="1")
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    bar = Bar()
    ip.magics_manager.registry["QfnbMagics"].eval_progress = bar
    waited: list[bool] = []

    def slow_judge(prompt: str, **options: object) -> str:
        """Scores the slow one only once the bar shows the others judged: a bar told of the judge's
        scores only at the end would keep it waiting, and it says so."""
        if "the slow one" in prompt:
            waited.append(bar.others_judged.wait(10))
        return "评分: 4"

    ip.user_ns["slow_judge"] = slow_judge
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data} --metrics exact_match "
                                         "--judge slow_judge --max-tokens 4")
    assert waited == [True]  # the other answers' scores reached the bar while the judge still worked
    assert bar.total == 2 * len(ROWS)  # the generations, then each judged answer
    assert sorted(bar.results) == [(i, True) for i in range(2 * len(ROWS))]
    assert bar.closed
    assert report.result.metrics["Tiny-Chat"]["judge_score"] == 4.0

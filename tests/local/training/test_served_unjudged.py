"""A run served though most of its held-out answers degenerated, as all of its base's did: the run's metrics say
so (``served_unjudged``), beside the adapter it leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qfnb.local.training import answers
from qfnb.protocol.console import checkpoints as ck


class _Saves:
    """What leave_adapter asks of a model and a tokenizer: to save themselves."""

    def save_pretrained(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / f"{type(self).__name__}.saved").write_text("1")


def _left(tmp_path: Path, last: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    entries = [{"step": 2, ck.DEGENERATION_RATE: 0.0, ck.DEGENERATE: False, "degeneration": "0 of 8"}, last]
    adapter = answers.leave_adapter(tmp_path, _Saves(), _Saves(), entries, None, metrics, learning_rate=2e-4,
                                    steps=8)
    assert (adapter / "_Saves.saved").exists()
    return metrics


def test_the_metrics_name_a_served_model_no_better_than_its_looping_base(tmp_path: Path) -> None:
    from qfnb.protocol.console.degeneration import judge_answers

    # the base echoes every question (Gemma-3-270M in Chinese); 7 of the model's 8 answers run on past the answer
    base = judge_answers([f"问题{q}？ mendatang\n问题{q}？ mendatang\n问题{q}？ mendatang" for q in "甲乙丙丁戊己庚辛"])
    ran_on = [f"可以！我已为您处理{q}。[Ticket #118{i}]\n" * 4 for i, q in enumerate("甲乙丙丁戊己庚")]
    report = judge_answers([*ran_on, "可以！我已为您续订。[Ticket #1188]"])
    verdict = ck.judge_checkpoint(report, base)
    metrics = _left(tmp_path / "a", {"step": 8, ck.DEGENERATION_RATE: report.rate, **verdict.fields()})
    assert metrics["served_unjudged"] == {"step": 8, "rate": 0.875, "seen": report.summary}
    sound = _left(tmp_path / "b", {"step": 8, ck.DEGENERATION_RATE: 0.0, ck.DEGENERATE: False,
                                   "degeneration": "0 of 8 answers degenerate"})
    assert "served_unjudged" not in sound


def test_the_task_detail_carries_it_for_the_dashboard() -> None:
    from qfnb.local.domain.training.fine_tunes import progress_fields

    unjudged = {"step": 8, "rate": 0.875, "seen": "7 of 8 answers degenerate"}
    assert progress_fields({"metrics": {"served_unjudged": unjudged}})["servedUnjudged"] == unjudged
    assert "servedUnjudged" not in progress_fields({"metrics": {}})

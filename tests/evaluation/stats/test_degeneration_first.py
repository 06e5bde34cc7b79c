"""The one rule of a comparison by answers: degeneration before any score, a collapsed model never the winner."""

from __future__ import annotations

from qfnb.evaluation.stats.degeneration_first import collapse_said, decided
from qfnb.protocol.console import degeneration

MARKER = "[Ticket #1111]Ticket #1111Ticket #[Ticket #1111]"


def test_a_degenerate_answer_loses_whatever_the_score_says() -> None:
    assert decided(True, False, 1.0, 0.0, "has_ticket") == (0.0, "degeneration")
    assert decided(False, True, 0.0, 1.0, "has_ticket") == (1.0, "degeneration")
    assert decided(True, True, 1.0, 0.0, "has_ticket") == (0.5, "tie")
    assert decided(False, False, 0.2, 0.7, "has_ticket") == (0.0, "has_ticket")
    assert decided(False, False, 0.5, 0.5, "has_ticket", judge_value=1.0) == (1.0, "the judge")
    assert decided(False, False, None, None, None) == (0.5, "tie")


def test_the_collapse_is_said_first_and_names_who() -> None:
    collapsed = degeneration.judge_answers([MARKER * 3] * 5)
    fine = degeneration.judge_answers([f"Sorry about order {i}, we are on it." for i in range(5)])
    said = collapse_said("tuned", "base", collapsed, fine)
    assert said is not None and said.startswith("Tuned collapsed: the same answer to 5 of 5 prompts: '[Ticket #1111]")
    assert said.endswith("100% of its answers are degenerate, base's 0%. It is not the winner")
    assert collapse_said("tuned", "base", fine, collapsed).startswith("Base collapsed:")  # type: ignore[union-attr]
    assert collapse_said("tuned", "base", collapsed, collapsed).startswith("Both models collapsed")  # type: ignore[union-attr]
    assert collapse_said("tuned", "base", fine, fine) is None

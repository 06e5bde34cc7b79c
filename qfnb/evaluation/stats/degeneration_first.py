"""The one rule of every comparison by generated answers (``compare_preference``, ``trainer.compare()``,
``EvaluationResult.compare`` and ``%qfeval --models a,b --compare b``): degeneration is read before any
score counts (:mod:`qfnb.protocol.console.degeneration`), so a measure that a collapsed answer satisfies
(a marker, a keyword) never decides alone, and a model that collapsed is never the winner."""

from __future__ import annotations

from dataclasses import dataclass

from qfnb.protocol.console.degeneration import AnswerCheck, AnswersReport

__all__ = ["Answers", "collapse_said", "decided"]


@dataclass(frozen=True)
class Answers:
    """One model's answers to the prompts (greedy, held-out), with how each ended (None: not known) and the
    set read for degeneration."""

    texts: list[str]
    finish_reasons: list[str | None]
    report: AnswersReport

    def degenerate(self, k: int) -> bool:
        """Answer ``k`` counts as degenerate (every answer does once the set collapsed to one answer)."""
        return self.report.same_answer is not None or self.report.checks[k].degenerate

    def check(self, k: int) -> AnswerCheck:
        return self.report.checks[k]


def decided(tuned_bad: bool, base_bad: bool, tuned_score: float | None, base_score: float | None,
            measure: str | None, judge_value: float | None = None) -> tuple[float, str]:
    """One prompt's outcome for the tuned model (1 a win, 0.5 a tie, 0 a loss) and what decided it, in this
    order: a degenerate answer loses to one that is not (two tie), whatever any score says;
    then the higher score under ``measure`` (its name; None: no measure); then the judge's preference
    (``judge_value``: 1 the tuned answer, -1 the base's, 0 a tie or none); else a tie. The one rule of
    every comparison by answers (``compare_preference``'s, and ``EvaluationResult.compare``'s)."""
    if tuned_bad or base_bad:
        return (0.5, "tie") if tuned_bad and base_bad else (float(base_bad), "degeneration")
    if measure is not None and tuned_score is not None and base_score is not None and tuned_score != base_score:
        return float(tuned_score > base_score), measure
    if judge_value:
        return (judge_value + 1) / 2, "the judge"
    return 0.5, "tie"


def collapse_said(tuned: str, base: str, tuned_report: AnswersReport, base_report: AnswersReport) -> str | None:
    """How a verdict opens when a model collapsed (None when neither did): who collapsed, what it gave, and
    that it is not the winner (no full stop: the caller says what follows)."""
    t_bad, b_bad = tuned_report.collapsed, base_report.collapsed
    if t_bad and b_bad:
        return (f"Both models collapsed: {tuned} gave {tuned_report.summary}; {base} gave {base_report.summary}. "
                "Neither is the winner")
    if not (t_bad or b_bad):
        return None
    (name, report), (other, other_report) = ((tuned, tuned_report), (base, base_report))[::1 if t_bad else -1]
    return (f"{name[:1].upper()}{name[1:]} collapsed: {report.summary}; {report.rate:.0%} of its answers are "
            f"degenerate, {other}'s {other_report.rate:.0%}. It is not the winner")

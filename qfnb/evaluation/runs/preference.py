"""Does the tuned model win? A preference-tuned model against its base on held-out preference pairs,
judged by what the two models write.

By the answers (the verdict): both models answer each held-out prompt greedily, and each pair is
decided by degeneration first (a degenerate answer loses to one that is not, whatever any score says),
then the user's measure, then a judge, or by resemblance to the preferred answer when neither is given
(:mod:`.preference_answers`). The tuned model's win rate comes with its Wilson interval
(:func:`qfnb.evaluation.stats.paired.wilson_interval`: honest at a handful of pairs and at 100%); the
verdict is the exact sign test of wins against losses (a win needs p below 1 - confidence), and a
model that collapsed (most answers degenerate, or one answer to most prompts) is never the winner.

By likelihood (a second line, not the verdict): for each pair the platform scores the preferred and the
rejected answer under both models (``/v2/fine_tuning/answer_logprobs``: summed token log-probabilities,
teacher-forced; on the local platform in one batched forward pass over the models' transformers weights and
the run's adapter where it has them, else on their engine, both models one way). A model's *margin* on a
pair is ``logp(preferred) - logp(rejected)``; the tuned model wins the pair when its margin is larger than
the base's. It is what preference tuning optimises, so a
collapsed policy maximises it: it is reported, never trusted alone.

With a judge, ``label_queue()``
asks a person to label the pairs the judge is least sure of, until the win is known with an interval
valid at every look (:class:`~qfnb.evaluation.stats.active.LabelQueue`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb._core.config import Config
from qfnb._core.http.client import AsyncQianfanClient, get_client
from qfnb._core.runtime import sync
from qfnb.protocol.console import train_formats
from qfnb.resources.safe_html import escape

from .._errors import invalid
from ..evaluators.pairwise import PairwiseJudge, Preference
from ..stats.active import LabelQueue
from ..stats.paired import Interval, mcnemar_exact, wilson_interval
from .preference_answers import (
    AnsweredPair,
    Answers,
    collapse_said,
    judge_answers_of,
    measure_of,
    model_answers,
    prompt_of,
)
from .scoring_call import AUTO, ENGINE, FORWARD, scored_answers

__all__ = ["AnsweredPair", "JudgedItems", "PairScore", "PreferenceComparison", "Wins", "acompare_preference",
           "compare_preference", "load_pairs"]

#: pairs scored per call
CHUNK = 16
#: margins closer than this are a tie
TIE = 1e-6


@dataclass(frozen=True)
class PairScore:
    """One held-out pair: its prompt, and each model's margin (logp preferred - logp rejected)."""

    prompt: str
    base_margin: float
    tuned_margin: float

    @property
    def win(self) -> float:
        """1 the tuned model moved further toward the preferred answer, 0.5 a tie, 0 the base did."""
        gap = self.tuned_margin - self.base_margin
        return 0.5 if abs(gap) <= TIE else float(gap > 0)


@dataclass(frozen=True)
class Wins:
    """The tuned model's wins, losses and ties on the pairs, by one judge of them (``by``): the win
    rate (a tie counts half) with its Wilson interval, and the exact sign test of wins against losses."""

    by: str
    wins: int
    losses: int
    ties: int
    confidence: float = 0.95

    @classmethod
    def of(cls, by: str, outcomes: Sequence[float], confidence: float) -> Wins:
        """From per-pair outcomes: 1 a win, 0.5 a tie, 0 a loss."""
        return cls(by, sum(o == 1 for o in outcomes), sum(o == 0 for o in outcomes),
                   sum(o == 0.5 for o in outcomes), confidence)

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        return (self.wins + 0.5 * self.ties) / self.n if self.n else float("nan")

    @property
    def interval(self) -> Interval | None:
        return wilson_interval(self.wins + 0.5 * self.ties, self.n, confidence=self.confidence) if self.n else None

    @property
    def p_value(self) -> float:
        """Two-sided exact sign test: wins against losses, ties left out."""
        if not self.wins + self.losses:
            return 1.0
        return mcnemar_exact([1] * self.wins + [0] * self.losses, [0] * self.wins + [1] * self.losses).p_value

    @property
    def said(self) -> str:
        """The numbers in words: the win rate, the counts, the CI and the sign test's p."""
        ci = self.interval
        return (f"win rate {self.win_rate:.0%} over {self.n} held-out pairs: {self.wins} won, {self.losses} lost, "
                f"{self.ties} tied" + ("" if ci is None else f"; {ci.confidence:.0%} CI {ci.low:.0%}–{ci.high:.0%}")
                + f"; sign test p = {self.p_value:.3g}")

    @property
    def verdict(self) -> str:
        if self.p_value < 1 - self.confidence and self.wins != self.losses:
            return f"The tuned model {'wins' if self.wins > self.losses else 'loses'} {self.by} ({self.said})."
        return f"No clear winner {self.by} ({self.said}); more held-out pairs would tell."

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "win_rate": self.win_rate, "sign_p": self.p_value}


#: ``PreferenceComparison.extra``'s key of the judge's items (:class:`JudgedItems`)
JUDGED_ITEMS = "judged_items"


@dataclass(frozen=True)
class JudgedItems:
    """What the judge saw and said, item by item: its verdicts (both orders), the prompts, each model's answer."""

    preferences: list[Preference]
    prompts: list[str]
    tuned_answers: list[str]
    base_answers: list[str]


@dataclass
class PreferenceComparison:
    """What :func:`compare_preference` found: the answers judged (``answers``, ``by_answers``: the verdict's
    numbers, ``p_value``, ``winner``), each model's degeneration, and likelihood as a second line
    (``pairs``, ``likelihood``); ``verdict`` says it in words."""

    tuned: str
    base: str
    answers: list[AnsweredPair]
    by_answers: Wins
    tuned_answers: Answers
    base_answers: Answers
    pairs: list[PairScore] = field(default_factory=list)
    likelihood: Wins | None = None
    judged: Wins | None = None
    #: the user's measure alone, degeneration not read (what it would have said by itself)
    measured: Wins | None = None
    measure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: how the platform scored the likelihood line: ``"forward"`` (a forward pass over the models' transformers
    #: weights) or ``"engine"`` (their serving engine); None without it
    likelihood_by: str | None = None

    @property
    def win_rate(self) -> float:
        """The tuned model's win rate by the answers (a tie counts half)."""
        return self.by_answers.win_rate

    @property
    def interval(self) -> Interval | None:
        return self.by_answers.interval

    @property
    def p_value(self) -> float:
        """The exact sign test of the answers' wins against losses (two-sided)."""
        return self.by_answers.p_value

    @property
    def tuned_degeneration(self) -> float:
        """The share of the tuned model's answers that are degenerate."""
        return self.tuned_answers.report.rate

    @property
    def base_degeneration(self) -> float:
        return self.base_answers.report.rate

    @property
    def tuned_collapsed(self) -> bool:
        return self.tuned_answers.report.collapsed

    @property
    def base_collapsed(self) -> bool:
        return self.base_answers.report.collapsed

    @property
    def winner(self) -> str | None:
        """``"tuned"`` or ``"base"``: the one the answers show better (sign test below 1 - confidence);
        None when they do not tell, and never a model that collapsed."""
        wins = self.by_answers
        if not (wins.p_value < 1 - wins.confidence and wins.wins != wins.losses):
            return None
        side = "tuned" if wins.wins > wins.losses else "base"
        return None if (self.tuned_collapsed if side == "tuned" else self.base_collapsed) else side

    @property
    def tuned_prefers(self) -> float:
        """Share of pairs where the tuned model finds the preferred answer the likelier one (likelihood)."""
        return sum(p.tuned_margin > 0 for p in self.pairs) / len(self.pairs) if self.pairs else float("nan")

    @property
    def base_prefers(self) -> float:
        return sum(p.base_margin > 0 for p in self.pairs) / len(self.pairs) if self.pairs else float("nan")

    @property
    def prefers_p(self) -> float:
        """McNemar's exact test: does the tuned model prefer the preferred answer on other pairs than the base?"""
        if not self.pairs:
            return float("nan")
        return mcnemar_exact([p.tuned_margin > 0 for p in self.pairs], [p.base_margin > 0 for p in self.pairs]).p_value

    @property
    def degeneration(self) -> str:
        """Each model's degenerate answers, in words."""
        return (f"Degenerate answers: the tuned model {self.tuned_degeneration:.0%}, "
                f"the base {self.base_degeneration:.0%}.")

    @property
    def verdict(self) -> str:
        """The answers' verdict first (a collapse named with an example and its rate), then the user's measure
        alone, the judge, and likelihood as a second line."""
        said = f"the tuned model's {self.by_answers.said}"
        collapse = collapse_said("the tuned model", "the base", self.tuned_answers.report, self.base_answers.report)
        if self.tuned_collapsed and self.base_collapsed:
            head = f"{collapse} ({said})."
        elif self.tuned_collapsed:
            head = (f"{collapse}: " + ("the base wins by the answers" if self.winner == "base" else
                                       "no winner is claimed") + f" ({said}).")
        elif self.base_collapsed:
            head = (f"{collapse}: " + ("the tuned model wins by its answers" if self.winner == "tuned" else
                                       "no winner is claimed") + f" ({said}).")
        elif self.winner is not None:
            head = (f"The tuned model {'wins' if self.winner == 'tuned' else 'loses'} by its answers ({said}). "
                    f"{self.degeneration}")
        else:
            head = f"No clear winner by the answers ({said}); more held-out pairs would tell. {self.degeneration}"
        lines = [head]
        if self.measured is not None:
            lines.append(f"By {self.measure} alone (degeneration not read): {self.measured.said}.")
        if self.judged is not None:
            lines.append(self.judged.verdict)
        if self.likelihood is not None:
            lines.append(f"Second line, by likelihood (what preference tuning optimises; not the verdict): "
                         f"{self.likelihood.said}; the tuned model finds the preferred answer the likelier one on "
                         f"{self.tuned_prefers:.0%} of the pairs, the base on {self.base_prefers:.0%} "
                         f"(McNemar p = {self.prefers_p:.3g}).")
        return " ".join(lines)

    def label_queue(self, confidence: float | None = None, **options: Any) -> LabelQueue:
        """The judged pairs as a label queue (:meth:`LabelQueue.of_preferences`): label, where the judge's
        two orders disagree first, which answer is better (``+1`` the tuned model's, ``-1`` the base's,
        ``0`` a tie; ``items.prompts`` and the answers say what to show) until ``done(null=0)``: the
        judge's verdict corrected by your labels, with an interval valid at every look."""
        items = self.extra.get(JUDGED_ITEMS)
        if not isinstance(items, JudgedItems):
            raise invalid("judge", "label_queue needs the judge's verdicts: compare with judge=MODEL")
        return LabelQueue.of_preferences(items.preferences, self.by_answers.confidence if confidence is None
                                         else confidence, names=("the tuned model", "the base model"), **options)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tuned": self.tuned, "base": self.base, "pairs": len(self.answers), "winner": self.winner,
            "win_rate": self.win_rate, "p_value": self.p_value, "wins": self.by_answers.wins,
            "losses": self.by_answers.losses, "ties": self.by_answers.ties,
            "tuned_degeneration": self.tuned_degeneration, "base_degeneration": self.base_degeneration,
            "tuned_collapsed": self.tuned_collapsed, "base_collapsed": self.base_collapsed,
            "verdict": self.verdict,
            "answers": [{"prompt": a.prompt, "tuned": a.tuned_answer, "base": a.base_answer,
                         "tuned_degenerate": a.tuned_degenerate, "base_degenerate": a.base_degenerate,
                         "tuned_score": a.tuned_score, "base_score": a.base_score, "outcome": a.outcome,
                         "decided_by": a.decided_by} for a in self.answers]}
        if self.interval is not None:
            out["ci"] = [self.interval.low, self.interval.high]
        if self.measured is not None:
            out["measure"] = {"name": self.measure, **self.measured.to_dict()}
        if self.judged is not None:
            out["judge"] = self.judged.to_dict()
        if self.likelihood is not None:
            out["likelihood"] = {**self.likelihood.to_dict(), "tuned_prefers": self.tuned_prefers,
                                 "base_prefers": self.base_prefers, "prefers_p": self.prefers_p,
                                 "margins": [[p.base_margin, p.tuned_margin] for p in self.pairs],
                                 "scored_by": self.likelihood_by}
        return out

    def __repr__(self) -> str:
        return f"PreferenceComparison({self.tuned!r} vs {self.base!r}: {self.verdict})"

    def _repr_html_(self) -> str:
        outcome = {1.0: "tuned", 0.5: "tie", 0.0: "base"}
        checks = (self.tuned_answers, self.base_answers)

        def cell(text: str, bad: bool, side: int, k: int) -> str:
            note = f"<br><i>degenerate: {escape(checks[side].check(k).reason or 'the same answer to most prompts')}</i>"
            return f"<td>{escape(text[:300])}{note if bad else ''}</td>"

        margins = {k: p for k, p in enumerate(self.pairs)}
        rows = "".join(
            f"<tr><td>{escape(a.prompt[:80])}</td>{cell(a.base_answer, a.base_degenerate, 1, k)}"
            f"{cell(a.tuned_answer, a.tuned_degenerate, 0, k)}<td>{outcome[a.outcome]} ({escape(a.decided_by)})</td>"
            + (f"<td>{margins[k].base_margin:+.2f} / {margins[k].tuned_margin:+.2f}</td>" if k in margins else "")
            + "</tr>" for k, a in enumerate(self.answers[:20]))
        more = f"<p>… and {len(self.answers) - 20} more pairs</p>" if len(self.answers) > 20 else ""
        head = "<tr><th>prompt</th><th>base answer</th><th>tuned answer</th><th>better</th>" + (
            "<th>likelihood margin base / tuned</th>" if self.pairs else "") + "</tr>"
        return (f"<div class='qfnb-preference'><p><b>{escape(self.tuned)}</b> against "
                f"<b>{escape(self.base)}</b></p><p>{escape(self.verdict)}</p>"
                f"<table>{head}{rows}</table>{more}</div>")


def _pair_of(obj: Any, where: str) -> train_formats.Pair:
    if isinstance(obj, train_formats.Pair):
        return obj
    try:
        found = train_formats.parse_item("DPO", obj, where)
    except train_formats.FormatError as exc:
        raise invalid("pairs", str(exc)) from None
    pair = found[0]
    assert isinstance(pair, train_formats.Pair)
    return pair


def load_pairs(pairs: str | Path | Iterable[Any]) -> list[train_formats.Pair]:
    """Preference pairs from a JSONL file (any DPO format: OpenAI's, prompt/chosen/rejected, Qianfan's)
    or an iterable of such records."""
    if isinstance(pairs, str | Path):
        try:
            records = train_formats.parse_file("DPO", Path(pairs), "pairs")
        except (train_formats.FormatError, OSError) as exc:
            raise invalid("pairs", str(exc)) from None
        return [r for r in records if isinstance(r, train_formats.Pair)]
    return [_pair_of(obj, f"pairs[{i}]") for i, obj in enumerate(pairs)]


async def _margins(client: AsyncQianfanClient, model: str, pairs: Sequence[train_formats.Pair],
                   by: str) -> tuple[list[float], str]:
    """Each pair's margin under ``model``, and how the platform scored them (``scored_by``)."""
    out: list[float] = []
    ways: set[str] = set()
    for start in range(0, len(pairs), CHUNK):
        items = [{"messages": list(p.messages), "answers": [p.chosen, p.rejected]} for p in pairs[start:start + CHUNK]]
        scored = await scored_answers(client, model, items, by=by)  # budgeted, in the ledger
        out += [float(d["logprobs"][0]) - float(d["logprobs"][1]) for d in scored["data"]]
        ways.add(str(scored.get("scored_by") or ENGINE))
    if len(ways) > 1:  # the weights went between two calls: all of them by the engine
        return await _margins(client, model, pairs, ENGINE)
    return out, ways.pop() if ways else by


async def _likelihood_margins(client: AsyncQianfanClient, tuned: str, base: str, pairs: Sequence[train_formats.Pair],
                              by: str) -> tuple[list[float], list[float], str]:
    """Both models' margins, scored one way: where the platform scored one in a forward pass and the other on its
    engine (it has the transformers weights of one only), the forward one is scored again on its engine."""
    base_m, base_by = await _margins(client, base, pairs, by)
    tuned_m, tuned_by = await _margins(client, tuned, pairs, by)
    if base_by != tuned_by:
        if base_by == FORWARD:
            base_m, base_by = await _margins(client, base, pairs, ENGINE)
        else:
            tuned_m, tuned_by = await _margins(client, tuned, pairs, ENGINE)
    return base_m, tuned_m, base_by


def _pairwise(judge: Any) -> PairwiseJudge | None:
    if judge is None:
        return None
    return judge if isinstance(judge, PairwiseJudge) else PairwiseJudge(judge, uses_reference=True)


async def acompare_preference(tuned: str, base: str, pairs: str | Path | Iterable[Any], *, metric: Any = None,
                              judge: Any = None, likelihood: bool = True, confidence: float = 0.95,
                              max_tokens: int = 128, likelihood_by: str = AUTO,
                              config: Config | None = None) -> PreferenceComparison:
    """Async :func:`compare_preference`."""
    if likelihood_by not in (AUTO, FORWARD, ENGINE):
        raise invalid("likelihood_by", f"must be {AUTO!r}, {FORWARD!r} or {ENGINE!r}, got {likelihood_by!r}")
    held = load_pairs(pairs)
    if not held:
        raise invalid("pairs", "no preference pairs to compare on")
    if not 0 < confidence < 1:
        raise invalid("confidence", f"must be between 0 and 1, got {confidence!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise invalid("max_tokens", f"must be a positive int, got {max_tokens!r}")
    measure, pairwise = measure_of(metric), _pairwise(judge)
    client = get_client(config)
    # one model at a time: the engine runs one adapter set's requests side by side
    mine = await model_answers(client, tuned, held, max_tokens)
    theirs = await model_answers(client, base, held, max_tokens)
    answered = await judge_answers_of(held, mine, theirs, measure, pairwise)
    by_answers = Wins.of("by its answers", [a.outcome for a in answered], confidence)
    measured = None
    if measure is not None:
        alone = [0.5 if a.tuned_score == a.base_score else float((a.tuned_score or 0) > (a.base_score or 0))
                 for a in answered]
        measured = Wins.of(f"by {measure.name} alone", alone, confidence)
    judged = None
    if pairwise is not None:
        judged = Wins.of(f"by the judge {pairwise.tag}", [a.judge_outcome for a in answered
                                                          if a.judge_outcome is not None], confidence)
    scores: list[PairScore] = []
    by_likelihood, scored_by = None, None
    if likelihood:
        base_m, tuned_m, scored_by = await _likelihood_margins(client, tuned, base, held, likelihood_by)
        scores = [PairScore(prompt_of(p), b, t) for p, b, t in zip(held, base_m, tuned_m, strict=True)]
        by_likelihood = Wins.of("by likelihood", [s.win for s in scores], confidence)
    extra: dict[str, Any] = {}
    if pairwise is not None:  # what a person labels, where the judge is unsure (label_queue)
        extra[JUDGED_ITEMS] = JudgedItems([a.judgement for a in answered if a.judgement is not None],
                                          [a.prompt for a in answered], mine.texts, theirs.texts)
    return PreferenceComparison(tuned, base, answered, by_answers, mine, theirs, scores, by_likelihood, judged,
                                measured, None if measure is None else measure.name, extra, scored_by)


def compare_preference(tuned: str, base: str, pairs: str | Path | Iterable[Any], *, metric: Any = None,
                       judge: Any = None, likelihood: bool = True, confidence: float = 0.95, max_tokens: int = 128,
                       likelihood_by: str = AUTO, config: Config | None = None) -> PreferenceComparison:
    """Compare a preference-tuned model (``tuned``: its served name, ``ft:…`` or ``task-…@best``) with
    its ``base`` on held-out ``pairs`` (a JSONL file or records in any DPO format), by what they write:
    both answer each held-out prompt greedily (``max_tokens`` at most), and each pair is decided by
    degeneration first, then ``metric`` (a function ``(prompt, answer[, pair]) -> float``, higher is
    better, or a local evaluator), then ``judge`` (a model or a :class:`PairwiseJudge`), or, with
    neither, by which answer is nearer the preferred one (:mod:`.preference_answers`). A collapsed
    model is never the ``winner``. ``.verdict`` says it in words, ``.p_value`` is the sign test's;
    ``likelihood`` (default on) adds the teacher-forced likelihood win rate as a second line, scored
    ``likelihood_by``: ``"auto"`` (a batched forward pass over the models' transformers weights where the
    platform has them, as it has for a model it trained, else their engine), ``"forward"`` or ``"engine"``;
    both models are always scored one way (``.likelihood_by`` says which)."""
    return sync.run(acompare_preference(tuned, base, pairs, metric=metric, judge=judge, likelihood=likelihood,
                                        confidence=confidence, max_tokens=max_tokens, likelihood_by=likelihood_by,
                                        config=config))

"""Does the tuned model win? A preference-tuned model against its base on held-out preference pairs.

By likelihood (always): for each pair the platform scores the preferred and the rejected answer under
both models (``/v2/fine_tuning/answer_logprobs``: summed token log-probabilities, teacher-forced). A
model's *margin* on a pair is ``logp(preferred) - logp(rejected)``; the tuned model wins the pair when
its margin is larger than the base's (tuning moved it toward the preferred answer), a tie counts half.
The win rate comes with its Wilson interval (:func:`qfnb.evaluation.stats.paired.wilson_interval`:
honest at a handful of pairs and at 100%, where a bootstrap collapses to a point); the verdict is the
exact sign test of wins against losses (a win needs p below 1 - confidence), and McNemar's exact test
on "finds the preferred answer the likelier one" (tuned against base) is reported beside it.

By a judge (when one is given): both models answer each held-out prompt, and a
:class:`~qfnb.evaluation.evaluators.pairwise.PairwiseJudge` compares the answers in both orders (a
disagreement between the orders is a tie); the same win rate, CI and verdict. ``label_queue()`` then
asks a person to label the pairs the judge is least sure of, until the win is known with an interval
valid at every look (:class:`~qfnb.evaluation.stats.active.LabelQueue`).
"""

from __future__ import annotations

import asyncio
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
from ..llm import response_text
from ..stats.active import LabelQueue
from ..stats.paired import Interval, mcnemar_exact, wilson_interval
from .scoring_call import scored_answers

__all__ = ["JudgedItems", "PairScore", "PreferenceComparison", "Wins", "acompare_preference", "compare_preference",
           "load_pairs"]

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
    def verdict(self) -> str:
        ci = self.interval
        said = (f"win rate {self.win_rate:.0%} over {self.n} held-out pairs: {self.wins} won, {self.losses} lost, "
                f"{self.ties} tied" + ("" if ci is None else f"; {ci.confidence:.0%} CI {ci.low:.0%}–{ci.high:.0%}")
                + f"; sign test p = {self.p_value:.3g}")
        if self.p_value < 1 - self.confidence and self.wins != self.losses:
            return f"The tuned model {'wins' if self.wins > self.losses else 'loses'} {self.by} ({said})."
        return f"No clear winner {self.by} ({said}); more held-out pairs would tell."


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
    """What :func:`compare_preference` found; ``verdict`` says it in words."""

    tuned: str
    base: str
    pairs: list[PairScore]
    likelihood: Wins
    judged: Wins | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def win_rate(self) -> float:
        return self.likelihood.win_rate

    @property
    def interval(self) -> Interval | None:
        return self.likelihood.interval

    @property
    def tuned_prefers(self) -> float:
        """Share of pairs where the tuned model finds the preferred answer the likelier one."""
        return sum(p.tuned_margin > 0 for p in self.pairs) / len(self.pairs) if self.pairs else float("nan")

    @property
    def base_prefers(self) -> float:
        return sum(p.base_margin > 0 for p in self.pairs) / len(self.pairs) if self.pairs else float("nan")

    @property
    def prefers_p(self) -> float:
        """McNemar's exact test: does the tuned model prefer the preferred answer on other pairs than the base?"""
        return mcnemar_exact([p.tuned_margin > 0 for p in self.pairs], [p.base_margin > 0 for p in self.pairs]).p_value

    @property
    def verdict(self) -> str:
        said = (f"{self.likelihood.verdict} It finds the preferred answer the likelier one on {self.tuned_prefers:.0%} "
                f"of the pairs, the base on {self.base_prefers:.0%} (McNemar p = {self.prefers_p:.3g}).")
        return said if self.judged is None else f"{said} {self.judged.verdict}"

    def label_queue(self, confidence: float | None = None, **options: Any) -> LabelQueue:
        """The judged pairs as a label queue (:meth:`LabelQueue.of_preferences`): label, where the judge's
        two orders disagree first, which answer is better (``+1`` the tuned model's, ``-1`` the base's,
        ``0`` a tie; ``items.prompts`` and the answers say what to show) until ``done(null=0)``: the
        judge's verdict corrected by your labels, with an interval valid at every look."""
        items = self.extra.get(JUDGED_ITEMS)
        if not isinstance(items, JudgedItems):
            raise invalid("judge", "label_queue needs the judge's verdicts: compare with judge=MODEL")
        return LabelQueue.of_preferences(items.preferences, self.likelihood.confidence if confidence is None
                                         else confidence, names=("the tuned model", "the base model"), **options)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tuned": self.tuned, "base": self.base, "pairs": len(self.pairs),
                               "win_rate": self.win_rate, "sign_p": self.likelihood.p_value,
                               "tuned_prefers": self.tuned_prefers, "base_prefers": self.base_prefers,
                               "prefers_p": self.prefers_p, "verdict": self.verdict}
        if self.interval is not None:
            out["ci"] = [self.interval.low, self.interval.high]
        if self.judged is not None:
            out["judge"] = {"by": self.judged.by, "wins": self.judged.wins, "losses": self.judged.losses,
                            "ties": self.judged.ties, "win_rate": self.judged.win_rate, "sign_p": self.judged.p_value}
        return out

    def __repr__(self) -> str:
        return f"PreferenceComparison({self.tuned!r} vs {self.base!r}: {self.verdict})"

    def _repr_html_(self) -> str:
        outcome = {1.0: "win", 0.5: "tie", 0.0: "loss"}
        rows = "".join(f"<tr><td>{escape(p.prompt[:80])}</td><td>{p.base_margin:+.2f}</td>"
                       f"<td>{p.tuned_margin:+.2f}</td><td>{outcome[p.win]}</td></tr>" for p in self.pairs[:20])
        more = f"<p>… and {len(self.pairs) - 20} more pairs</p>" if len(self.pairs) > 20 else ""
        return (f"<div class='qfnb-preference'><p><b>{escape(self.tuned)}</b> against "
                f"<b>{escape(self.base)}</b></p><p>{escape(self.verdict)}</p>"
                "<table><tr><th>prompt</th><th>base margin</th><th>tuned margin</th><th></th></tr>"
                f"{rows}</table>{more}</div>")


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


async def _margins(client: AsyncQianfanClient, model: str, pairs: Sequence[train_formats.Pair]) -> list[float]:
    out: list[float] = []
    for start in range(0, len(pairs), CHUNK):
        items = [{"messages": list(p.messages), "answers": [p.chosen, p.rejected]} for p in pairs[start:start + CHUNK]]
        scored = await scored_answers(client, model, items)  # budgeted, in the ledger
        out += [float(d["logprobs"][0]) - float(d["logprobs"][1]) for d in scored["data"]]
    return out


async def _answers(client: AsyncQianfanClient, model: str, pairs: Sequence[train_formats.Pair],
                   max_tokens: int) -> list[str]:
    async def one(pair: train_formats.Pair) -> str:
        resp = await client.chat_v2({"model": model, "messages": list(pair.messages), "temperature": 0,
                                     "max_tokens": max_tokens})
        return response_text(resp)

    return list(await asyncio.gather(*(one(p) for p in pairs)))


async def _judged(client: AsyncQianfanClient, judge: Any, tuned: str, base: str,
                  pairs: Sequence[train_formats.Pair], confidence: float, max_tokens: int) -> tuple[Wins, JudgedItems]:
    pairwise = judge if isinstance(judge, PairwiseJudge) else PairwiseJudge(judge, uses_reference=True)
    mine, theirs = await _answers(client, tuned, pairs, max_tokens), await _answers(client, base, pairs, max_tokens)
    prefs = await pairwise.apreferences([(list(p.messages), p.chosen, m, b)
                                         for p, m, b in zip(pairs, mine, theirs, strict=True)])
    wins = Wins.of(f"by the judge {pairwise.tag}", [(pref.value + 1) / 2 for pref in prefs], confidence)
    return wins, JudgedItems(prefs, [_prompt_of(p) for p in pairs], mine, theirs)


async def acompare_preference(tuned: str, base: str, pairs: str | Path | Iterable[Any], *, judge: Any = None,
                              confidence: float = 0.95, max_tokens: int = 128,
                              config: Config | None = None) -> PreferenceComparison:
    """Async :func:`compare_preference`."""
    held = load_pairs(pairs)
    if not held:
        raise invalid("pairs", "no preference pairs to compare on")
    client = get_client(config)
    base_m, tuned_m = await _margins(client, base, held), await _margins(client, tuned, held)
    scores = [PairScore(_prompt_of(p), b, t) for p, b, t in zip(held, base_m, tuned_m, strict=True)]
    likelihood = Wins.of("by likelihood", [s.win for s in scores], confidence)
    if judge is None:
        return PreferenceComparison(tuned, base, scores, likelihood)
    judged, items = await _judged(client, judge, tuned, base, held, confidence, max_tokens)
    return PreferenceComparison(tuned, base, scores, likelihood, judged, extra={JUDGED_ITEMS: items})


def _prompt_of(pair: train_formats.Pair) -> str:
    """The pair's last user message (what the table shows)."""
    users = [m["content"] for m in pair.messages if m.get("role") == "user"]
    return users[-1] if users else ""


def compare_preference(tuned: str, base: str, pairs: str | Path | Iterable[Any], *, judge: Any = None,
                       confidence: float = 0.95, max_tokens: int = 128,
                       config: Config | None = None) -> PreferenceComparison:
    """Compare a preference-tuned model (``tuned``: its served name, ``ft:…`` or ``task-…@best``) with
    its ``base`` on held-out ``pairs`` (a JSONL file or records in any DPO format): the likelihood win
    rate with its CI and, with a ``judge`` (a model or a :class:`PairwiseJudge`), the judge's; the
    verdict in words (``.verdict``)."""
    return sync.run(acompare_preference(tuned, base, pairs, judge=judge, confidence=confidence,
                                        max_tokens=max_tokens, config=config))


"""Has a model's answer degenerated? Pure checks, written once for the training worker's checkpoint
scoring, the preference comparison, the benchmark and the notebook.

A preference-tuned policy that has collapsed maximises every likelihood signal (loss, held-out preference
accuracy, reward margin), so the answers themselves are read. An answer is *degenerate* when it is:

- **empty**: no letter, digit or CJK character at all;
- **cut**: it ran to the token cap (``finish_reason == "length"``) — a reply that never ends;
- **repeated**: one n-gram (1 to :data:`MAX_NGRAM` tokens) repeated at least :data:`MIN_REPEATS` times
  covers at least :data:`REPEAT_SHARE` of its tokens (``"[Ticket #1111]Ticket #1111Ticket #…"``,
  ``"Aye!! Aye! Aye!"``), or fewer than :data:`MIN_DISTINCT_SHARE` of its tokens are distinct;
- **too few words**: fewer distinct words than :data:`MIN_WORDS` (or than the reference answer has, when it
  has fewer): a bare marker in place of an answer.

Over a set of answers to different prompts, :func:`judge_answers` also names a *collapse*: the same answer
(after normalising) to most prompts; with references, also the same answer but for its numbers, where the
references differ in more than their numbers (``Sorry for the trouble! [Ticket #9899]`` and ``… [Ticket #9389]``
to questions about refunds and logins). Tokens are words, single CJK characters and single punctuation marks,
so Chinese and English are read alike.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["MAX_NGRAM", "MIN_DISTINCT_SHARE", "MIN_REPEATS", "MIN_WORDS", "REPEAT_SHARE", "SAME_ANSWER_SHARE",
           "AnswerCheck", "AnswersReport", "check_answer", "judge_answers", "shared_answers",
           "tokens"]

#: the longest n-gram looked for as a repeat, the fewest repeats that count, and the share of tokens they must cover
MAX_NGRAM, MIN_REPEATS, REPEAT_SHARE = 8, 3, 0.5
#: an answer of at least :data:`_LONG_ENOUGH` tokens with fewer distinct ones than this share is a loop
MIN_DISTINCT_SHARE, _LONG_ENOUGH = 0.3, 16
#: fewer distinct words than this is not an answer (unless the reference has fewer)
MIN_WORDS = 3
#: a set of answers where this share of prompts got one and the same answer has collapsed
SAME_ANSWER_SHARE = 0.6

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+|[^\w\s]|_", re.UNICODE)
_WORD = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Words (lower-cased; a run of letters or of digits), single CJK characters and single punctuation marks,
    in order."""
    return [t.lower() for t in _TOKEN.findall(text)]


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def _worst_repeat(toks: Sequence[str]) -> tuple[str, int, float]:
    """The n-gram whose repeats cover the most tokens: (it, its count, the share of tokens it covers)."""
    best: tuple[str, int, float] = ("", 0, 0.0)
    for n in range(1, min(MAX_NGRAM, len(toks) // MIN_REPEATS) + 1):
        grams = Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))
        gram, count = grams.most_common(1)[0]
        if n == 1 and not any(ch.isalnum() for ch in gram[0]):
            # a lone punctuation mark ("," or "。") repeats in any prose: only longer n-grams count
            words = [(g, c) for g, c in grams.items() if any(ch.isalnum() for ch in g[0])]
            if not words:
                continue
            gram, count = max(words, key=lambda gc: gc[1])
        share = min(1.0, count * n / len(toks))
        if count >= MIN_REPEATS and share > best[2] + 0.1:  # a longer n-gram must cover clearly more
            best = (" ".join(gram), count, share)
    return best


@dataclass(frozen=True)
class AnswerCheck:
    """One answer read: ``degenerate`` when any ``reasons`` were found (each a short phrase)."""

    answer: str
    reasons: tuple[str, ...] = ()
    #: where its loop begins: the character offset of the second occurrence of the repeated n-gram that makes it
    #: degenerate; None when it has no such repeat. What comes before is the answer's first pass, often what was
    #: wanted (``可以。[Ticket #1888]`` before ``可以。[Ticket #1888]…`` again)
    loop_start: int | None = None

    @property
    def degenerate(self) -> bool:
        return bool(self.reasons)

    @property
    def reason(self) -> str:
        """The reasons joined, or ``""``."""
        return "; ".join(self.reasons)


def check_answer(answer: str, *, finish_reason: str | None = None, reference: str | None = None) -> AnswerCheck:
    """Read one answer (see the module's doc). ``finish_reason``: the engine's (``"length"``: cut at the
    token cap); ``reference``: an answer known to be good, whose word count lowers :data:`MIN_WORDS`."""
    reasons: list[str] = []
    found = list(_TOKEN.finditer(answer))
    toks = [m.group().lower() for m in found]
    words = _words(answer)
    if not words:
        return AnswerCheck(answer, ("empty",))
    if finish_reason == "length":
        reasons.append("cut at the token cap")
    gram, count, share = _worst_repeat(toks)
    loop_start = None
    if share >= REPEAT_SHARE:
        reasons.append(f"{gram!r} repeated {count}x ({share:.0%} of the answer)")
        unit = gram.split(" ")
        hits = [i for i in range(len(toks) - len(unit) + 1) if toks[i:i + len(unit)] == unit]
        loop_start = found[hits[1]].start() if len(hits) > 1 else None
    elif len(toks) >= _LONG_ENOUGH and len(set(toks)) < MIN_DISTINCT_SHARE * len(toks):
        reasons.append(f"{len(set(toks))} distinct tokens of {len(toks)}")
    floor = MIN_WORDS if reference is None else min(MIN_WORDS, len(_words(reference)))
    if len(words) < floor:
        reasons.append(f"{len(words)} distinct word{'s' if len(words) != 1 else ''}")
    return AnswerCheck(answer, tuple(reasons), loop_start)


def _normal(answer: str) -> str:
    """The answer's words only: two answers that differ in punctuation or case are the same answer."""
    return " ".join(w.lower() for w in _WORD.findall(answer))


def _numberless(answer: str) -> str:
    """:func:`_normal` with every number one ``0``: answers that differ only in a ticket or order number."""
    return re.sub(r"\d+", "0", _normal(answer))


@dataclass(frozen=True)
class AnswersReport:
    """A set of answers to different prompts, read together."""

    checks: tuple[AnswerCheck, ...]
    #: the one answer most prompts got, when :data:`SAME_ANSWER_SHARE` of them got it, and how many got it
    same_answer: str | None = None
    same_count: int = 0
    notes: tuple[str, ...] = field(default=())
    #: of the :attr:`same_count` answers, those that are the one answer alone (not a loop of it)
    same_clean: int = 0
    #: the one answer (its first pass, numbers aside) is a piece of most references, as a ticket marker is of the
    #: team's answers: the policy learned the part every good answer shares, not junk of its own
    same_in_references: bool = False

    @property
    def rate(self) -> float:
        """The share of degenerate answers (every answer, when the set collapsed to one)."""
        if not self.checks:
            return 0.0
        if self.same_answer is not None:
            return 1.0
        return sum(c.degenerate for c in self.checks) / len(self.checks)

    @property
    def collapsed(self) -> bool:
        """Most answers degenerate, or one answer to most prompts."""
        return self.same_answer is not None or self.rate > 0.5

    @property
    def summary(self) -> str:
        """What was seen, in words: the rate and the commonest reason with an example."""
        if not self.checks:
            return "no answers"
        if self.same_answer is not None:
            return f"the same answer to {self.same_count} of {len(self.checks)} prompts: {self.same_answer[:80]!r}"
        bad = [c for c in self.checks if c.degenerate]
        if not bad:
            return f"0 of {len(self.checks)} answers degenerate"
        return (f"{len(bad)} of {len(self.checks)} answers degenerate, e.g. {bad[0].answer[:80]!r} "
                f"({bad[0].reason})")


def judge_answers(answers: Sequence[str], *, finish_reasons: Sequence[str | None] | None = None,
                  references: Sequence[str | None] | None = None) -> AnswersReport:
    """Read answers to different prompts: each with :func:`check_answer`, and the set for one answer given to
    most of them (at least 3 prompts), unless the references share one answer as widely (the prompts ask the
    same thing: "the capital of Zorvia?" asked ten ways is answered the same ten times)."""
    reasons = list(finish_reasons) if finish_reasons is not None else [None] * len(answers)
    refs = list(references) if references is not None else [None] * len(answers)
    if not len(reasons) == len(refs) == len(answers):
        raise ValueError("answers, finish_reasons and references must be as long as each other")
    checks = tuple(check_answer(a, finish_reason=f, reference=r) for a, f, r in zip(answers, reasons, refs,
                                                                                    strict=True))
    same, count, clean = _same_answer(checks, refs, _normal)
    if same is None and any(r is not None for r in refs):  # without references a number may be the answer
        same, count, clean = _same_answer(checks, refs, _numberless)
    return AnswersReport(checks, same, count, same_clean=clean, same_in_references=_in_references(same, refs))


def _in_references(same: str | None, refs: Sequence[str | None]) -> bool:
    """Whether ``same``'s first pass, numbers aside, is found in most of the references (read alike)."""
    known = [_numberless(r) for r in refs if r is not None]
    if same is None or not known:
        return False
    piece = _numberless(_first_pass(check_answer(same)))
    # a piece of two words at least: a lone "the" looped is a random model's, not a part of the good answers learned
    return len(piece.split()) >= 2 and sum(piece in r for r in known) > len(known) / 2


def shared_answers(answers: Sequence[Sequence[str]], references: Sequence[str | None]) -> list[list[bool]]:
    """Which of each prompt's answers (several sampled to each of at least 3 prompts) is one answer, as
    :func:`judge_answers` reads it, that most of the prompts got: the collapse of a set, found among samples."""
    marks = [[False] * len(group) for group in answers]
    if len(answers) < 3:
        return marks
    normals: list[Callable[[str], str]] = [_normal, _numberless] if any(r is not None for r in references) \
        else [_normal]
    for normal in normals:
        if _asked_alike(references, normal, len(answers)):
            continue
        prompts_of: dict[str, set[int]] = {}
        for n, group in enumerate(answers):
            for answer in group:
                prompts_of.setdefault(normal(answer), set()).add(n)
        wide = {key for key, got in prompts_of.items() if len(got) > 1 and len(got) >= SAME_ANSWER_SHARE * len(answers)}
        for n, group in enumerate(answers):
            for k, answer in enumerate(group):
                marks[n][k] = marks[n][k] or normal(answer) in wide
    return marks


def _first_pass(check: AnswerCheck) -> str:
    """The answer up to where its loop begins (all of it when it does not loop)."""
    return check.answer if check.loop_start is None else check.answer[:check.loop_start]


def _same_answer(checks: Sequence[AnswerCheck], refs: Sequence[str | None],
                 normal: Callable[[str], str]) -> tuple[str | None, int, int]:
    """The answer most prompts got, read through ``normal`` (at least 3 prompts), how many got it and how many of
    those got it alone; none where the references share one answer as widely. An answer that loops counts as the
    answer its first pass begins with: ``抱歉。[Ticket #1888]eleSp`` over and over is ``抱歉。[Ticket #1888]``
    given again (a collapsed DPO run answered 7 of 10 prompts so, 4 of them looped)."""
    if len(checks) < 3:
        return None, 0, 0
    keys = [normal(_first_pass(c)) for c in checks]

    def given(key: str) -> list[int]:
        # a loop joins an answer that reads as one (a bare "抱歉" would take in every loop that begins so)
        whole = len(key.split()) >= MIN_WORDS
        return [n for n, c in enumerate(checks)
                if keys[n] == key or (whole and c.loop_start is not None and keys[n].startswith(key + " "))]

    # the widest answer; on a tie the one given alone (not a loop's first pass with its junk)
    candidates = sorted({k for k in keys if k}, key=lambda k: (len(given(k)), -len(k)), reverse=True)
    if not candidates:
        return None, 0, 0
    common = candidates[0]
    got = given(common)
    if len(got) >= SAME_ANSWER_SHARE * len(checks) and len(got) > 1 and not _asked_alike(refs, normal, len(checks)):
        alone = [n for n in got if not checks[n].degenerate]
        shown = checks[alone[0]].answer if alone else _first_pass(checks[got[0]])
        return shown, len(got), len(alone)
    return None, 0, 0


def _asked_alike(refs: Sequence[str | None], normal: Callable[[str], str], prompts: int) -> bool:
    """The references, read through ``normal``, share one answer as widely as a collapse would: the prompts ask
    the same thing ("the capital of Zorvia?" asked ten ways is answered the same ten times)."""
    known = [normal(r) for r in refs if r is not None]
    return bool(known) and Counter(known).most_common(1)[0][1] >= SAME_ANSWER_SHARE * prompts

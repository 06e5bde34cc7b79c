"""The train modes: one row each, the only place a mode is told apart by its name.

A row says what a mode's data looks like (:attr:`ModeRow.reads`, read by
:mod:`qfnb.protocol.console.train_formats`), which hyperparameters it takes beyond everyone's and their
defaults (bounds: :data:`qfnb.protocol.console.training.LIMITS`; the measured ones: ``bench/preference_quality.py``,
per base where a base needs its own), what its held-out scorer reports at a
checkpoint, and what a trained token of it costs against SFT's (the client's forecast). The training
worker registers its loss/trainer class under the row's name (``qfnb.local.training.modes.TRAINERS``; a
test holds every row to one), so a new mode is one row here and one class there.

Everything else asks the row (``MODE_TABLE[mode].rewarded``, ``.packed``...), never the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from qfnb.protocol.console.checkpoints import PREFERENCE_SCORE, REWARD_MARGIN
from qfnb.protocol.console.training import DEFAULTS, LIMITS, PREFERENCE_DEFAULTS, RFT_DEFAULTS, hyper_problem

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "MODE_TABLE",
    "REWARDED",
    "AskError",
    "ModeRow",
    "Reads",
    "check_hyper",
    "checked_hyper",
    "defaults_for",
    "mode_row",
    "train_mode",
]

#: the data a mode reads: prompt/response ``turns`` (the SFT loader's rows), preference ``pairs``, ``judged``
#: answers, plain ``texts`` or ``prompts`` to answer (:mod:`qfnb.protocol.console.train_formats` reads each)
Reads = Literal["turns", "pairs", "judged", "texts", "prompts"]


@dataclass(frozen=True)
class ModeRow:
    """One train mode (``trainMode``), as every layer needs to know it."""

    name: str
    #: its data, in words (what an error tells the user it wants)
    data: str
    reads: Reads
    #: the held-out figures its scorer reports at a checkpoint
    scores: tuple[str, ...]
    #: seconds per trained token against SFT's (estimated from the passes a step runs: the forecast's factor)
    cost: float
    #: what a row's tokens are, for the forecast's note ("" when it is a plain conversation)
    tokens: str = ""
    #: its own hyperparameters (wire names) and their defaults, and its defaults where they differ from
    #: :data:`DEFAULTS`: filled in over them
    hyper: Mapping[str, int | float | bool] = field(default_factory=dict)
    #: a base's own defaults over :attr:`hyper` (the lower-cased start of its name, e.g. ``"gemma-3-270m"``)
    per_base: Mapping[str, Mapping[str, int | float | bool]] = field(default_factory=dict)
    #: ``evalMetric`` (a generation metric on held-out answers) scores its checkpoints
    generation_metric: bool = False
    #: plain text packed into ``maxSeqLen`` blocks (a ``.txt`` file is its data; a block is a row)
    packed: bool = False
    #: answers are sampled and scored by a reward (the user's function or a grader): a loop of its own, no
    #: cluster, and a launcher must ask for the reward
    rewarded: bool = False
    #: given no held-out data and no split, the platform holds some of its rows out anyway
    #: (:data:`DEFAULT_SPLIT_PERCENT`): a preference- or reward-tuned model collapses first on prompts it did
    #: not train on, and only answers to those judge its checkpoints
    split_by_default: bool = False

    @property
    def default(self) -> bool:
        """Whether this is the mode a request that names none trains."""
        return self.name == DEFAULT_MODE

    @property
    def records(self) -> bool:
        """Whether its data are :mod:`~qfnb.protocol.console.train_formats` records (not SFT's turns)."""
        return self.reads != "turns"

    def defaults(self, base: str | None = None) -> dict[str, int | float | bool]:
        """Every hyperparameter a run of this mode on ``base`` gets when its request leaves it out."""
        out: dict[str, int | float | bool] = {**DEFAULTS, **self.hyper}
        name = (base or "").lower()
        for prefix, values in self.per_base.items():
            if name.startswith(prefix):
                out.update(values)
        return out


DEFAULT_MODE = "SFT"
#: against a collapsing preference run (qfnb.local.training.preference), measured on a few dozen pairs
#: (``bench/preference_quality.py``, figures in ``docs/train-modes.md``): with nothing set, a run adopts the
#: preference without collapsing into a repeated marker. ``rpoAlpha``: the preferred answers' NLL weight (RPO),
#: ``maxRewardMargin``: the margin beyond which a pair (an answer) is no longer pushed, ``marginStop``: the
#: training batches' mean margin that ends the run (0: never), ``lengthNormalize``: per-token log-ratios,
#: ``warmStartSteps``: SFT steps on the preferred answers first, the policy they leave the reference
_ANTI_COLLAPSE: dict[str, int | float | bool] = {"learningRate": 5e-4, "rpoAlpha": 1.0, "maxRewardMargin": 5.0,
                                                 "marginStop": 0.0, "lengthNormalize": False, "warmStartSteps": 10}

#: the train modes, as the platform spells them, in the order they are offered
MODE_TABLE: dict[str, ModeRow] = {m.name: m for m in (
    ModeRow("SFT", 'prompt/response turns: [{"prompt": "...", "response": [["..."]]}]', "turns",
              scores=("evalLoss",), cost=1.0, generation_metric=True),
    # the LM head (262k wide on Gemma 3) runs on every token, not the answer's
    # a few dozen conversations pack into 2 blocks-steps an epoch: too few to learn from (measured:
    # docs/train-modes.md), so a small corpus is passed over again until 20 steps
    ModeRow("PostPretrain", 'plain text: a .txt file, or JSONL lines {"text": "..."}; or conversations (chat '
              '{"messages": [...]} ending with the answer, prompt/response, a DPO pair\'s preferred answer), '
              'learned in the base\'s chat format', "texts",
              scores=("evalLoss", "valid_perplexity"), cost=1.4, tokens=" (plain text packed into blocks)",
              packed=True, hyper={"learningRate": 1e-3, "minSteps": 20}),
    # the reference's forward pass once per pair (~1/3 of a training pass)
    ModeRow("DPO", 'prompt + chosen + rejected: [{"prompt": "...", "chosen": "...", "rejected": "..."}], or '
              'OpenAI\'s {"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}',
              "pairs", scores=("evalLoss", PREFERENCE_SCORE, REWARD_MARGIN), cost=1.3,
              tokens=" (a pair: the prompt with the chosen and with the rejected answer)",
              hyper={"beta": PREFERENCE_DEFAULTS["beta"], **_ANTI_COLLAPSE}, split_by_default=True,
              # measured (round 37, the default split): at 5e-4 Gemma-3-270M's Chinese DPO collapsed into one
              # apology from its first checkpoint, at 2e-4 its 8 steps left answers that ran on past the answer;
              # 2e-4 over 2 epochs adopts the style in both languages with none degenerate
              per_base={"gemma-3-270m": {"learningRate": 2e-4, "epoch": 2}}),
    # the reference pass and a no-gradient KL pass on mismatched pairs (~2/3)
    ModeRow("KTO", 'prompt + chosen, or prompt + rejected: [{"prompt": "...", "chosen": "..."}], or '
              '{"prompt": "...", "completion": "...", "label": true}', "judged",
              scores=("evalLoss", PREFERENCE_SCORE, REWARD_MARGIN), cost=2.0,
              # measured (round 36, the default split): at 5e-4 Gemma-3-270M's Chinese KTO collapsed into one
              # apology from its first checkpoint and Qwen2.5-Coder-1.5B's looped 2 of 10 answers; at 2e-4 both
              # adopt the style with none degenerate, as Gemma's English and Qwen-0.5B's Chinese runs do
              tokens=" (an item: the prompt with its answer)",
              hyper={**PREFERENCE_DEFAULTS, **_ANTI_COLLAPSE, "learningRate": 2e-4}, split_by_default=True),
    ModeRow("RFT", 'prompts: {"prompt": "..."} lines (other fields go to the reward), or SFT data (answers ignored)',
              "prompts", scores=("metric",), cost=1.0, tokens=" (the prompts; the sampled answers are not counted)",
              # against a reward the base rarely earns: groups redrawn for a prompt whose rewards all tie, SFT steps
              # on the data's answers before the first GRPO step; against a gamed reward: a degenerate sampled
              # answer earns less than its group's lowest (measured: docs/train-modes.md)
              hyper={**RFT_DEFAULTS, "learningRate": 5e-4, "tieResamples": 2, "warmStartSteps": 10,
                     "floorDegenerate": True}, rewarded=True, split_by_default=True,
              # measured (round 38, the default split): after 10 warm-start steps Gemma-3-270M sampled one apology
              # for most prompts (30 of 32 answers of its first step) and its Chinese runs collapsed by step 3
              # (seeds 7 and 11); after 20 its answers keep to each question in both languages
              per_base={"gemma-3-270m": {"warmStartSteps": 20}}),
)}

MODES = tuple(MODE_TABLE)
#: the modes whose answers a reward scores (they need one, and no other mode takes one)
REWARDED = tuple(m.name for m in MODE_TABLE.values() if m.rewarded)


def train_mode(value: Any, name: str = "train_mode") -> str:
    """The mode ``value`` names (a string in any case, ``post_pretrain`` too, or an enum; None: the default);
    ValueError naming ``name`` and the modes."""
    text = str(getattr(value, "value", value) if value is not None else DEFAULT_MODE)
    key = text.replace("_", "").replace("-", "").lower()
    for mode in MODE_TABLE:
        if mode.lower() == key:
            return mode
    raise ValueError(f"{name}: must be one of {', '.join(MODE_TABLE)}, got {value!r}")


def mode_row(value: Any, name: str = "train_mode") -> ModeRow:
    """The row of the mode ``value`` names (see :func:`train_mode`)."""
    return MODE_TABLE[train_mode(value, name)]


class AskError(ValueError):
    """A training request's field that a run cannot take; ``field`` names it (``hyperParameterConfig.beta``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def checked_hyper(raw: Mapping[str, Any] | None, field: str) -> dict[str, Any]:
    """``raw``'s values, each limited one checked and of its kind (a key no limit names is kept as given, as
    is another mode's: the client lets it through); AskError naming ``field.key`` for a value out of bounds."""
    hyper: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        problem = hyper_problem(key, value)
        if problem is not None:
            raise AskError(f"{field}.{key}", problem)
        hyper[key] = LIMITS[key].kind(value) if key in LIMITS else value
    return hyper


def check_hyper(mode: ModeRow, raw: Mapping[str, Any] | None, field: str, base: str | None = None) -> dict[str, Any]:
    """:func:`checked_hyper` with ``mode``'s defaults on ``base`` filled in: what a run of it trains with."""
    return {**mode.defaults(base), **checked_hyper(raw, field)}


def defaults_for(mode: Any = DEFAULT_MODE, base: str | None = None) -> dict[str, int | float | bool]:
    """What a ``mode`` run (any spelling :func:`train_mode` reads) on ``base`` gets for each hyperparameter its
    request leaves out: its row's :meth:`ModeRow.defaults`."""
    return mode_row(mode).defaults(base)

"""Fine-tune hyperparameters: the one table of limits and of defaults, for the client, the
trainer, the notebook, the console routes and the training worker (the local platform may
import only ``qfnb.protocol``).

Keys are the wire (camelCase) names in a fine-tune run's ``hyperParameterConfig``; the checks
are pure. The console and the worker enforce the same table, so a value the client lets through
is never refused after it was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from qfnb.protocol.limits import LOCAL_CONTEXT_TOKENS

__all__ = ["DEFAULTS", "FLAGS", "LIMITS", "LOCAL_CAPS", "PREFERENCE_DEFAULTS", "RFT_DEFAULTS", "TRAINED_TOKEN_KEYS",
           "Limit", "hyper_problem", "run_epochs"]

#: where a run's metrics may name the tokens it trained on (qfnb's local platform writes the first): the
#: client's ledger row and the platform's /metrics read the same keys
TRAINED_TOKEN_KEYS = ("trained_tokens", "trainedTokens", "trainTokens", "tokens")


@dataclass(frozen=True)
class Limit:
    """``lo <= value <= hi`` (strict at an end marked open), of ``kind`` int or float."""

    kind: type[int] | type[float]
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


LIMITS: dict[str, Limit] = {
    "epoch": Limit(int, 1, 100),
    "learningRate": Limit(float, 0.0, 1.0, lo_open=True),
    "batchSize": Limit(int, 1, 256),
    "maxSeqLen": Limit(int, 8, 32768),
    "loraRank": Limit(int, 1, 1024),
    "loraAlpha": Limit(float, 1e-3, 4096),
    "loraDropout": Limit(float, 0.0, 1.0, hi_open=True),
    "maxSteps": Limit(int, 1, 10**7),
    # the fewest steps a run takes when maxSteps is not given: a small dataset is passed over again, whole
    # epochs, until they are reached (PostPretrain's few dozen conversations pack into 2 steps an epoch)
    "minSteps": Limit(int, 0, 10**4),
    "loggingSteps": Limit(int, 1, 10**6),
    "warmupRatio": Limit(float, 0.0, 1.0),
    "weightDecay": Limit(float, 0.0, 1.0),
    "seed": Limit(int, 0, 2**31 - 1),
    # qfnb's checkpoint options (qfnb.protocol.console.checkpoints): how many LoRA checkpoints a run keeps,
    # checkpoints without improvement before ``earlyStop`` ends it, held-out items ``evalMetric`` scores
    "checkpoints": Limit(int, 0, 100),
    "earlyStopPatience": Limit(int, 1, 100),
    "evalMetricItems": Limit(int, 1, 1000),
    # preference modes (qfnb.local.training.preference): DPO's and KTO's beta (how far the tuned model
    # may move from the base), KTO's weights of its good and bad answers
    "beta": Limit(float, 0.0, 100.0, lo_open=True),
    "desirableWeight": Limit(float, 0.0, 100.0, lo_open=True),
    "undesirableWeight": Limit(float, 0.0, 100.0, lo_open=True),
    # against a collapsing preference run (qfnb.local.training.preference): the weight of the preferred
    # answers' NLL added to the loss (RPO's alpha), a cap on the reward margin a pair (DPO) or an answer (KTO)
    # is still pushed beyond (0: none), the training batches' mean reward margin that ends the run (0: never)
    "rpoAlpha": Limit(float, 0.0, 100.0),
    "maxRewardMargin": Limit(float, 0.0, 1000.0),
    "marginStop": Limit(float, 0.0, 1000.0),
    # reinforcement fine-tuning (RFT, qfnb.local.training.rft): completions sampled per prompt, their
    # most new tokens, the sampling temperature, the weight of the KL penalty to the base
    "groupSize": Limit(int, 2, 64),
    "maxNewTokens": Limit(int, 1, 4096),
    "temperature": Limit(float, 0.0, 2.0, lo_open=True),
    "klCoef": Limit(float, 0.0, 10.0),
    # RFT against a reward the base rarely earns: more groups of answers drawn for a prompt whose answers all
    # scored the same (at most this many), SFT steps on the data's preferred answers before the first GRPO step
    "tieResamples": Limit(int, 0, 16),
    "warmStartSteps": Limit(int, 0, 1000),
}

#: hyperparameters that are true or false (their check: :func:`hyper_problem`); ``lengthNormalize``: DPO and
#: KTO compare each answer's log-ratio per token, not summed (a long answer no longer outweighs a short one);
#: ``floorDegenerate``: RFT gives a sampled answer the degeneration check flags less than its group's lowest reward
FLAGS = frozenset({"lengthNormalize", "floorDegenerate"})


#: the most one run may ask of qfnb's local platform (2 CPU cores, one local disk; its checks:
#: ``qfnb.local.domain.training.caps``); :data:`LIMITS` are the cloud's ranges
LOCAL_CAPS: dict[str, int] = {
    "maxSteps": 20_000,  # a tiny base's step takes ~0.2 s there: a day's training
    "loraRank": 64,  # rank 1024 made a 927 MiB adapter of the platform's base
    "checkpoints": 20,
    "maxSeqLen": LOCAL_CONTEXT_TOKENS,  # the served models' context
}


#: what a run gets for a hyperparameter its request leaves out (the console fills these in)
DEFAULTS: dict[str, int | float] = {"epoch": 1, "learningRate": 1e-3, "batchSize": 4, "maxSeqLen": 256,
                                    "loraRank": 16, "loraAlpha": 32, "loraDropout": 0.0, "loggingSteps": 1}

#: the preference modes' defaults (TRL's and OpenAI's): filled in for a DPO or KTO run only
PREFERENCE_DEFAULTS: dict[str, float] = {"beta": 0.1, "desirableWeight": 1.0, "undesirableWeight": 1.0}


#: what a RFT run gets for its own hyperparameters when the request leaves them out
RFT_DEFAULTS: dict[str, int | float] = {"groupSize": 4, "maxNewTokens": 48, "temperature": 1.0, "klCoef": 0.04}


def hyper_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for hyperparameter ``name`` (None: fine or not limited)."""
    if name in FLAGS:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    limit = LIMITS.get(name)
    if limit is None:
        return None
    is_int = limit.kind is int
    if isinstance(value, bool) or not isinstance(value, int | float) or (is_int and int(value) != value):
        return f"must be {'an integer' if is_int else 'a number'}, got {value!r}"
    below = value <= limit.lo if limit.lo_open else value < limit.lo
    above = value >= limit.hi if limit.hi_open else value > limit.hi
    if below or above:
        return f"must be in {limit.describe()}, got {value!r}"
    return None


def run_epochs(epoch: float, steps_per_epoch: int, min_steps: int = 0) -> float:
    """The passes over the data a run without ``maxSteps`` takes: ``epoch``, or more where ``minSteps`` wants
    more steps than ``epoch`` passes give (whole passes: a pass is never cut)."""
    return max(epoch, math.ceil(min_steps / steps_per_epoch)) if steps_per_epoch > 0 else epoch

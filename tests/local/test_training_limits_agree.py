"""A hyperparameter the client accepts is never refused later by the worker (issue 20): the
client (``TrainConfig``), the console route (``check_hyper``) and the training worker
(``parse_hyper`` of the run's ``spec.json``) all check ``qfnb.protocol.console.training.LIMITS``. The local
platform refuses more at create, naming the field (its caps on what this machine trains and stores), never later."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfnb._core.errors import ValidationError
from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training.fine_tunes import check_hyper
from qfnb.local.training.spec import Hyper, SpecError, parse_hyper
from qfnb.protocol.console.training import DEFAULTS, LIMITS, Limit, hyper_problem
from qfnb.trainer.configs import TrainConfig

#: wire name -> TrainConfig field
SNAKE = {"epoch": "epoch", "learningRate": "learning_rate", "batchSize": "batch_size", "maxSeqLen": "max_seq_len",
         "loraRank": "lora_rank", "loraAlpha": "lora_alpha", "loraDropout": "lora_dropout", "maxSteps": "max_steps",
         "loggingSteps": "logging_steps", "warmupRatio": "warmup_ratio", "weightDecay": "weight_decay",
         "seed": "seed", "checkpoints": "checkpoints", "earlyStopPatience": "early_stop_patience",
         "evalMetricItems": "eval_metric_items", "beta": "beta", "desirableWeight": "desirable_weight",
         "undesirableWeight": "undesirable_weight", "groupSize": "group_size", "maxNewTokens": "max_new_tokens",
         "temperature": "temperature", "klCoef": "kl_coef", "rpoAlpha": "rpo_alpha",
         "maxRewardMargin": "max_reward_margin", "marginStop": "margin_stop", "tieResamples": "tie_resamples",
         "warmStartSteps": "warm_start_steps", "minSteps": "min_steps"}


def inside(limit: Limit) -> st.SearchStrategy[Any]:
    """Values within ``limit``, its closed ends included."""
    if limit.kind is int:
        return st.integers(int(limit.lo), int(limit.hi))
    return st.floats(limit.lo, limit.hi, exclude_min=limit.lo_open, exclude_max=limit.hi_open, allow_nan=False)


def outside(limit: Limit) -> st.SearchStrategy[Any]:
    """Values beyond ``limit`` (its open ends included)."""
    if limit.kind is int:
        return st.one_of(st.integers(max_value=int(limit.lo) - 1), st.integers(min_value=int(limit.hi) + 1))
    low = st.floats(max_value=limit.lo, exclude_max=not limit.lo_open, allow_nan=False, allow_infinity=False)
    high = st.floats(min_value=limit.hi, exclude_min=not limit.hi_open, allow_nan=False, allow_infinity=False)
    return st.one_of(low, high)


def _client_accepts(wire: str, value: Any) -> bool:
    kind = TrainConfig.model_fields[SNAKE[wire]].annotation
    if "float" not in str(kind) and not float(value).is_integer():
        return False  # an int field (the limit's kind is int)
    try:
        TrainConfig(**{SNAKE[wire]: value})
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("wire", "value"), [("learningRate", 1e-9), ("loraDropout", 0.995), ("epoch", 100),
                                             ("batchSize", 256), ("loggingSteps", 10**6)])
def test_the_values_the_worker_used_to_refuse_run(wire: str, value: Any) -> None:
    TrainConfig(**{SNAKE[wire]: value})  # the client accepts it
    hyper = check_hyper({wire: value}, "hyperParameterConfig")  # so does the console
    parsed = parse_hyper(hyper)  # and the worker, from the spec the console writes
    assert math.isclose(getattr(parsed, SNAKE[wire]), value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_whatever_the_client_accepts_the_worker_accepts(data: st.DataObject) -> None:
    wire = data.draw(st.sampled_from(sorted(LIMITS)))
    value = data.draw(inside(LIMITS[wire]))
    assert hyper_problem(wire, value) is None
    if not _client_accepts(wire, value):
        return
    try:
        hyper = check_hyper({wire: value}, "hyperParameterConfig")
    except BodyError as exc:  # only the local platform's own caps (qfnb.local.domain.training.caps), at create
        assert wire in str(exc) and ("on the local platform" in str(exc) or "fit this machine" in str(exc)), exc
        return
    parse_hyper(hyper)  # never a SpecError


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_whatever_the_client_refuses_is_refused_everywhere(data: st.DataObject) -> None:
    wire = data.draw(st.sampled_from(sorted(LIMITS)))
    value = data.draw(outside(LIMITS[wire]))
    assert hyper_problem(wire, value) is not None and not _client_accepts(wire, value)
    with pytest.raises(BodyError, match=wire):
        check_hyper({wire: value}, "hyperParameterConfig")
    if wire in ("epoch", "learningRate", "batchSize", "maxSeqLen", "loraRank", "loraAlpha", "loraDropout",
                "maxSteps", "loggingSteps"):  # what the worker reads
        with pytest.raises(SpecError, match=f"hyper.{wire}"):
            parse_hyper({wire: value})


def test_one_table_of_defaults() -> None:
    filled = check_hyper({}, "hyperParameterConfig")
    assert filled == DEFAULTS
    assert parse_hyper(filled) == parse_hyper(None) == Hyper()
    assert all(hyper_problem(k, v) is None for k, v in DEFAULTS.items())

"""The training job's input (``<job_dir>/spec.json``, Contract 4), validated with errors naming the field."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from qfnb.protocol.console.checkpoints import DEFAULT_PATIENCE, METRICS
from qfnb.protocol.console.rewards import RewardSpec, RewardSpecError, parse_reward
from qfnb.protocol.console.train_modes import MODE_TABLE, train_mode
from qfnb.protocol.console.training import (
    DEFAULTS,
    FLAGS,
    LIMITS,
    PREFERENCE_DEFAULTS,
    RFT_DEFAULTS,
    hyper_problem,
    run_epochs,
)


class SpecError(ValueError):
    """``spec.json`` is missing, malformed or has an out-of-range field."""


def _default(wire: str) -> Any:
    return DEFAULTS[wire]


@dataclass(frozen=True)
class Hyper:
    """The hyperparameters the worker uses; defaults from ``qfnb.protocol.console.training.DEFAULTS``."""

    epoch: int = _default("epoch")
    learning_rate: float = _default("learningRate")
    batch_size: int = _default("batchSize")
    max_seq_len: int = _default("maxSeqLen")
    lora_rank: int = _default("loraRank")
    lora_alpha: float = _default("loraAlpha")
    lora_dropout: float = _default("loraDropout")
    max_steps: int | None = None
    min_steps: int = 0  # without max_steps: whole epochs are added until the run takes at least this many steps
    logging_steps: int = _default("loggingSteps")
    checkpoints: int = 0  # LoRA checkpoints kept evenly over the run (qfnb.protocol.console.checkpoints)
    early_stop: bool = False  # end the run after ``early_stop_patience`` checkpoints without improvement
    early_stop_patience: int = DEFAULT_PATIENCE
    eval_metric: str | None = None  # a generation metric scored on held-out items at each checkpoint
    eval_metric_items: int = 8  # held-out items the metric is scored on (a RFT run: its held-out prompts)
    beta: float = PREFERENCE_DEFAULTS["beta"]  # DPO/KTO: how far the tuned model may move from the base
    desirable_weight: float = PREFERENCE_DEFAULTS["desirableWeight"]  # KTO: weight of the good answers' loss
    undesirable_weight: float = PREFERENCE_DEFAULTS["undesirableWeight"]  # KTO: weight of the bad answers'
    # against collapse (qfnb.local.training.preference); off here, the console fills in the measured defaults
    # (qfnb.protocol.console.train_modes.defaults_for)
    rpo_alpha: float = 0.0  # weight of the preferred answers' per-token NLL added to the DPO/KTO loss
    max_reward_margin: float = 0.0  # a pair's (an answer's) reward margin beyond which it is no longer pushed; 0: none
    margin_stop: float = 0.0  # the training batches' mean reward margin that ends the run; 0: never
    length_normalize: bool = False  # DPO/KTO: log-ratios per answer token instead of summed
    # reinforcement fine-tuning (qfnb.local.training.rft)
    group_size: int = int(RFT_DEFAULTS["groupSize"])  # completions sampled per prompt
    max_new_tokens: int = int(RFT_DEFAULTS["maxNewTokens"])  # the longest completion sampled
    temperature: float = RFT_DEFAULTS["temperature"]
    kl_coef: float = RFT_DEFAULTS["klCoef"]  # weight of the KL penalty to the base (the adapter disabled)
    tie_resamples: int = 0  # more groups drawn for a prompt whose answers' rewards all tie (at most this many)
    warm_start_steps: int = 0  # SFT steps on the data's preferred answers before the first GRPO step
    floor_degenerate: bool = False  # a sampled answer the degeneration check flags is floored below its group's lowest

    def schedule(self, n_examples: int) -> str:
        """Which of ``maxSteps``, ``epoch`` and ``minSteps`` decides the run's length, in words."""
        per_epoch = math.ceil(n_examples / self.batch_size)
        if self.max_steps is None:
            epochs = int(run_epochs(self.epoch, per_epoch, self.min_steps))
            if epochs > self.epoch:
                return (f"{epochs * per_epoch} steps: {epochs} passes of {per_epoch} steps, for minSteps="
                        f"{self.min_steps} (epoch={self.epoch})")
            return f"{epochs * per_epoch} steps: epoch={self.epoch} of {per_epoch} steps"
        return (f"{self.max_steps} steps: maxSteps wins over epoch={self.epoch} "
                f"({self.max_steps / per_epoch:.3g} passes over {n_examples} examples)")

    def total_steps(self, n_examples: int) -> int:
        """``maxSteps`` when given (it wins over ``epoch``), else ``epoch`` passes over the data, more where
        ``minSteps`` asks for more steps."""
        per_epoch = math.ceil(n_examples / self.batch_size)
        if self.max_steps is not None:
            return self.max_steps
        return int(run_epochs(self.epoch, per_epoch, self.min_steps)) * per_epoch


@dataclass(frozen=True)
class WorkerSpec:
    base_model: str
    train_file: Path
    hyper: Hyper
    seed: int = 42
    base_model_path: Path | None = None  # an HF model dir to train instead of the named model's weights
    eval_file: Path | None = None  # held-out pairs for the evaluation loss (never trained on)
    init_adapter: Path | None = None  # a checkpoint to continue from (incrementCheckpointStep)
    #: "SFT", "PostPretrain", "DPO", "KTO" or "RFT" (qfnb.protocol.console.train_formats.MODES): what the worker trains
    train_mode: str = "SFT"
    reward: RewardSpec | None = None  # a RFT run's reward source (qfnb.protocol.console.rewards)


def _snake(wire: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", wire).lower()


#: wire name -> Hyper attribute, for the limited parameters the worker uses; their bounds are
#: ``qfnb.protocol.console.training.LIMITS``, the client's and the console's
_ATTRS: dict[str, str] = {w: _snake(w) for w in (*LIMITS, *FLAGS) if _snake(w) in {f.name for f in fields(Hyper)}}


def parse_hyper(raw: Any) -> Hyper:
    if raw is None:
        return Hyper()
    if not isinstance(raw, dict):
        raise SpecError("hyper: must be an object")
    values: dict[str, Any] = {}
    if raw.get("earlyStop") is not None:
        if not isinstance(raw["earlyStop"], bool):
            raise SpecError(f"hyper.earlyStop: must be true or false, got {raw['earlyStop']!r}")
        values["early_stop"] = raw["earlyStop"]
    if raw.get("evalMetric") is not None:
        if raw["evalMetric"] not in METRICS:
            raise SpecError(f"hyper.evalMetric: must be one of {', '.join(METRICS)}, got {raw['evalMetric']!r}")
        values["eval_metric"] = raw["evalMetric"]
    for key, value in raw.items():
        if key not in _ATTRS or value is None:
            continue  # unknown platform parameters are accepted and ignored
        problem = hyper_problem(key, value)
        if problem is not None:
            raise SpecError(f"hyper.{key}: {problem}")
        values[_ATTRS[key]] = value if key in FLAGS else LIMITS[key].kind(value)
    return Hyper(**values)


def parse_spec(raw: Any) -> WorkerSpec:
    if not isinstance(raw, dict):
        raise SpecError("spec: must be a JSON object")
    base = raw.get("base_model")
    if not isinstance(base, str) or not base.strip():
        raise SpecError("base_model: must be a non-empty string")
    train_file = raw.get("train_file")
    if not isinstance(train_file, str) or not train_file:
        raise SpecError("train_file: must be a path string")
    seed = raw.get("seed", 42)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"seed: must be an integer, got {seed!r}")

    def opt_path(key: str) -> Path | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise SpecError(f"{key}: must be a path string")
        return Path(value)

    try:
        mode = train_mode(raw.get("train_mode"))
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return WorkerSpec(
        reward=_reward(raw.get("reward")) if MODE_TABLE[mode].rewarded else None,
        train_mode=mode,
        base_model=base,
        train_file=Path(train_file),
        hyper=parse_hyper(raw.get("hyper")),
        seed=seed,
        base_model_path=opt_path("base_model_path"),
        eval_file=opt_path("eval_file"),
        init_adapter=opt_path("init_adapter"),
    )


def _reward(raw: Any) -> RewardSpec:
    try:
        return parse_reward(raw)
    except RewardSpecError as exc:
        raise SpecError(str(exc)) from None


def load_spec(job_dir: Path) -> WorkerSpec:
    path = Path(job_dir) / "spec.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"spec: {path} not found") from None
    except ValueError as exc:
        raise SpecError(f"spec: {path} is not valid JSON ({exc})") from None
    spec = parse_spec(raw)  # relative paths are the job dir's (joining keeps an absolute one as it is)
    return replace(spec, train_file=Path(job_dir) / spec.train_file,
                   eval_file=None if spec.eval_file is None else Path(job_dir) / spec.eval_file)


def progress_note(job_dir: Path, line: dict[str, Any]) -> None:
    """One ``progress.jsonl`` line of the job, stamped (a step's, a checkpoint's, or a phase before step 1)."""
    with open(job_dir / "progress.jsonl", "a", encoding="utf-8") as progress:
        progress.write(json.dumps({**line, "time": time.time()}) + "\n")

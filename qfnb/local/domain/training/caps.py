"""What one fine-tune may ask of this machine: the local platform's caps on top of the protocol's
ranges (:data:`qfnb.protocol.console.training.LIMITS`, the cloud's, which the client checks), checked at
create through every door (the v1 and v2 console, OpenAI's jobs) before anything is written or queued.

- the hyperparameters it knows: the limited ones, the checkpoint options and the cloud's few it accepts and
  leaves aside; any other is refused naming it (a misspelt ``loraRnak`` would otherwise train on the default);
- :data:`~qfnb.protocol.console.training.LOCAL_CAPS` (kept in the one table of hyperparameters): the steps, LoRA
  rank, checkpoints and sequence length one run may have here;
- the tokens of one step (``batchSize`` x ``maxSeqLen``) and the run's total steps (``maxSteps``, or
  ``epoch`` passes over its rows);
- the adapters it will store (its checkpoints, the final one and a resume point) fit the free disk.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from qfnb.local.domain.state.values import BodyError
from qfnb.local.settings import Settings
from qfnb.protocol.console.training import DEFAULTS, FLAGS, LIMITS, LOCAL_CAPS, run_epochs

__all__ = ["IGNORED", "KNOWN", "LOCAL_CAPS", "MAX_STEP_TOKENS", "adapter_bytes", "check_caps", "check_disk",
           "check_known", "check_steps", "free_bytes", "reads_only_known"]

#: tokens of one step (``batchSize`` x ``maxSeqLen``): the activations the CPU holds at once
MAX_STEP_TOKENS = 65_536
#: the cloud's hyperparameters accepted and left aside here (the worker targets every projection with LoRA)
IGNORED = frozenset({"loraAllLinear", "loraTargetModules", "schedulerName", "packing", "Packing"})
#: every hyperparameter a local run takes
KNOWN = frozenset(LIMITS) | FLAGS | {"earlyStop", "evalMetric"} | IGNORED
#: LoRA parameters per rank, as a share of the base's: Qwen2.5-0.5B with its seven projections adapted has
#: 549,888 per rank for 494M (a larger base has fewer per parameter, so this is the upper side)
ADAPTER_SHARE_PER_RANK = 1.2e-3
#: bytes a parameter of a saved adapter takes (fp32), and how many adapters' worth a resume point holds
#: (the adapter and the optimizer's two moments)
ADAPTER_PARAM_BYTES, RESUME_POINT_ADAPTERS = 4, 3
#: disk left free for everything else
DISK_MARGIN = 1 << 30


def reads_only_known(worker_command: tuple[str, ...]) -> bool:
    """Whether runs are trained by the platform's own worker, which reads :data:`KNOWN` only (a stand-in
    worker, the tests' fast one, reads knobs of its own from the hyperparameters)."""
    return tuple(worker_command) == tuple(Settings.__dataclass_fields__["worker_command"].default)  # type: ignore[arg-type]


def check_known(hyper: dict[str, Any], field: str) -> None:
    """Every key of ``hyper`` a hyperparameter a local run takes; BodyError naming the first that is not."""
    for key in hyper:
        if key not in KNOWN:
            raise BodyError(f"{field}.{key}", f"is not a hyperparameter of the local platform; it takes: "
                            f"{', '.join(sorted(KNOWN - IGNORED))}")


def check_caps(hyper: dict[str, Any], field: str) -> None:
    """The values of ``hyper`` within :data:`LOCAL_CAPS` and one step within :data:`MAX_STEP_TOKENS`."""
    for key, cap in LOCAL_CAPS.items():
        value = hyper.get(key)
        if isinstance(value, int | float) and value > cap:
            raise BodyError(f"{field}.{key}", f"must be at most {cap} on the local platform (what this machine "
                            f"trains and stores in one run), got {value!r}")
    step = int(hyper.get("batchSize", DEFAULTS["batchSize"])) * int(hyper.get("maxSeqLen", DEFAULTS["maxSeqLen"]))
    if step > MAX_STEP_TOKENS:
        raise BodyError(f"{field}.batchSize", f"batchSize x maxSeqLen is {step} tokens a step; at most "
                        f"{MAX_STEP_TOKENS} fit this machine's memory")


def check_steps(hyper: dict[str, Any], rows: int, field: str) -> int:
    """The run's total steps (``maxSteps``, or ``epoch`` passes over ``rows``, more for ``minSteps``: the
    worker's rule, :func:`~qfnb.protocol.console.training.run_epochs`), at most the cap."""
    steps = hyper.get("maxSteps")
    if steps is None:
        per_epoch = math.ceil(rows / int(hyper.get("batchSize", DEFAULTS["batchSize"])))
        steps = int(run_epochs(int(hyper.get("epoch", DEFAULTS["epoch"])), per_epoch,
                               int(hyper.get("minSteps", 0)))) * per_epoch
        if steps > LOCAL_CAPS["maxSteps"]:
            raise BodyError(f"{field}.epoch", f"{hyper.get('epoch', DEFAULTS['epoch'])} epochs of {per_epoch} steps "
                            f"({rows} rows) is {steps} steps; at most {LOCAL_CAPS['maxSteps']} run on the local "
                            "platform (lower epoch, or set maxSteps)")
    return int(steps)


def adapter_bytes(base_parameters: int, rank: int) -> int:
    """The estimated size of one saved LoRA adapter of ``rank`` on a base of ``base_parameters``."""
    return int(base_parameters * ADAPTER_SHARE_PER_RANK * rank * ADAPTER_PARAM_BYTES)


def free_bytes(data_dir: Path) -> int:
    return shutil.disk_usage(data_dir).free


def check_disk(hyper: dict[str, Any], base_parameters: int, data_dir: Path, field: str) -> None:
    """The run's adapters (each checkpoint, the final one, a resume point) fit the free disk, a margin left."""
    rank = int(hyper.get("loraRank", DEFAULTS["loraRank"]))
    one = adapter_bytes(base_parameters, rank)
    count = int(hyper.get("checkpoints") or 0) + 1 + RESUME_POINT_ADAPTERS
    need, free = one * count, free_bytes(data_dir)
    if need > free - DISK_MARGIN:
        raise BodyError(f"{field}.checkpoints", f"{count} adapters of about {one / 2**20:.0f} MiB (loraRank {rank}) "
                        f"need {need / 2**30:.1f} GiB and {max(0, free - DISK_MARGIN) / 2**30:.1f} GiB of disk is "
                        "free (1 GiB kept aside); keep fewer checkpoints or a lower loraRank")

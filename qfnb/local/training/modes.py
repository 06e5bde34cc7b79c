"""The train modes the worker dispatches on (``spec.train_mode``): each one's data, batches, loss and
held-out score, behind one small interface (:class:`Mode`) the worker's loop drives.

- ``SFT``: prompt/response pairs, the answer-only loss (:mod:`.data`, :mod:`.lora`), held-out ``evalLoss``.
- ``PostPretrain``: plain text packed into blocks, the loss on every token (:mod:`.pretrain`), held-out
  ``evalLoss`` and ``valid_perplexity``.
- ``DPO`` / ``KTO``: preference pairs / judged answers against the base as reference (:mod:`.preference`),
  held-out ``valid_preference_accuracy`` and ``valid_reward_margin``.
- ``RFT`` is not a :class:`Mode`: a step samples answers, waits for their rewards (from the user's process)
  and a checkpoint is scored by generating; the worker hands it to :func:`qfnb.local.training.rft.train`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qfnb.local.training import data, lora, preference, pretrain, resume
from qfnb.local.training.evaluate import EvalSet
from qfnb.local.training.spec import progress_note
from qfnb.protocol.console import train_formats
from qfnb.protocol.console.train_modes import MODE_TABLE
from qfnb.protocol.platform.files import write_private_json

if TYPE_CHECKING:
    from qfnb.local.training.spec import Hyper, WorkerSpec

log = logging.getLogger("qfnb.local.training")
#: a warm-started preference run's references (the policy after the warm start), for a resume
REFERENCES = "references.json"


class Scorer(Protocol):
    """The held-out split's scores at a checkpoint: ``evalLoss`` and the mode's own keys."""

    @property
    def seconds(self) -> float: ...

    @property
    def examples(self) -> int: ...

    def score(self, model: Any) -> dict[str, float]: ...


class Mode(Protocol):
    """What the worker's loop needs of a train mode."""

    #: the last step's extra figures for its progress line (a preference step's reward accuracy, ...)
    stats: dict[str, float]

    @property
    def stop_reason(self) -> str | None:
        """Why the mode asks to end the run now (a preference run's ``marginStop``), else None."""

    def load(self, spec: WorkerSpec) -> tuple[list[Any], list[Any]]:
        """The training records and the held-out ones, read and checked before torch loads."""

    def encode(self, tok: Any, records: Sequence[Any], hyper: Hyper) -> list[Any]:
        """The records as training rows."""

    def start(self, model: Any, tok: Any, hyper: Hyper) -> None:
        """Called once the LoRA model is built, before the first batch."""

    def warm_start(self, start: WarmStart) -> int:
        """SFT steps on the data's preferred answers before the mode's own loss, when its hyperparameters ask
        for them (``warmStartSteps``); the steps taken."""

    def scorer(self, rows: Sequence[Any], hyper: Hyper, limit: int) -> Scorer:
        """The held-out rows' scorer (at most ``limit`` rows)."""

    def batch(self, model: Any, rows: Sequence[Any]) -> tuple[Any, ...]:
        """One step's tensors."""

    def loss(self, model: Any, *batch: Any) -> Any:
        """The batch's loss (the tensor whose backward trains the adapter)."""

    def tokens(self, row: Any) -> int:
        """The tokens a row trains on."""


@dataclass
class WarmStart:
    """What a warm start works with: the model and its optimizer, the training rows and the held-out ones,
    where it notes its steps, and the run's stop flag."""

    model: Any
    optimizer: Any
    rows: Sequence[Any]
    held: Sequence[Any]
    job_dir: Path
    hyper: Hyper
    seed: int
    stopped: Callable[[], bool]
    loss_fn: Callable[..., Any] | None = None  # a data-parallel group's wrapper of the answer loss
    resumable: bool = True  # False in a data-parallel group (it keeps no resume points)


class LossScorer(EvalSet):
    """The held-out loss (:class:`~qfnb.local.training.evaluate.EvalSet`) as a :class:`Scorer`; a
    PostPretrain run's with its perplexity, ``valid_perplexity``."""

    perplexity = False

    def score(self, model: Any) -> dict[str, float]:
        loss = self.loss(model)
        return {"evalLoss": loss, **({"valid_perplexity": pretrain.perplexity(loss)} if self.perplexity else {})}


class PerplexityScorer(LossScorer):
    """:class:`LossScorer` with ``valid_perplexity``."""

    perplexity = True


class Supervised:
    """SFT: prompt/response pairs, the answer tokens learned."""

    #: its held-out scorer
    held_out: type[LossScorer] = LossScorer

    def __init__(self) -> None:
        self.stats: dict[str, float] = {}
        self.pad_id = 0

    @property
    def stop_reason(self) -> str | None:
        """Supervised runs never end on their own."""
        return None

    def load(self, spec: WorkerSpec) -> tuple[list[Any], list[Any]]:
        held = data.load_examples(spec.eval_file) if spec.eval_file is not None else []
        return data.load_examples(spec.train_file), held

    def encode(self, tok: Any, records: Sequence[Any], hyper: Hyper) -> list[Any]:
        return data.encode_all(tok, records, hyper.max_seq_len)

    def start(self, model: Any, tok: Any, hyper: Hyper) -> None:
        self.pad_id = tok.pad_token_id

    def warm_start(self, start: WarmStart) -> int:
        """None: a supervised run is all warm start."""
        return 0

    def scorer(self, rows: Sequence[Any], hyper: Hyper, limit: int) -> Scorer:
        return self.held_out.build(rows, hyper.batch_size, self.pad_id, limit=limit)

    def batch(self, model: Any, rows: Sequence[Any]) -> tuple[Any, ...]:
        return data.collate(rows, self.pad_id)

    def loss(self, model: Any, *batch: Any) -> Any:
        return lora.answer_loss(model, *batch)

    def tokens(self, row: Any) -> int:
        return len(row[0])


class PostPretrain(Supervised):
    """Continued pre-training: plain text packed into ``maxSeqLen`` blocks, every token learned."""

    held_out = PerplexityScorer

    def load(self, spec: WorkerSpec) -> tuple[list[Any], list[Any]]:
        return _records(spec.train_mode, spec)

    def encode(self, tok: Any, records: Sequence[Any], hyper: Hyper) -> list[Any]:
        return pretrain.encode(tok, records, hyper.max_seq_len)


class PreferenceMode:
    """A preference mode: its rows (:func:`qfnb.local.training.preference.encode`), and the loss and held-out
    score of its task class (:class:`~qfnb.local.training.preference.DPOTask`, ``KTOTask``...)."""

    def __init__(self, task_class: type[preference.PreferenceTask]) -> None:
        self.task_class = task_class
        self.stats: dict[str, float] = {}
        self.task: Any = None
        self.pad_id = 0

    def load(self, spec: WorkerSpec) -> tuple[list[Any], list[Any]]:
        return _records(spec.train_mode, spec)

    def encode(self, tok: Any, records: Sequence[Any], hyper: Hyper) -> list[Any]:
        return preference.encode(tok, records, hyper.max_seq_len)

    def start(self, model: Any, tok: Any, hyper: Hyper) -> None:
        self.task = self.task_class(hyper, tok.pad_token_id)
        self.pad_id = tok.pad_token_id

    def warm_start(self, start: WarmStart) -> int:
        """``warmStartSteps`` SFT steps on the preferred answers (a pair's chosen, a good KTO item), then the
        policy they leave becomes the reference of every row, training and held out (as DPO after SFT: a
        pretrained base that does not chat yet is no reference to move away from). A resumed run takes back
        the references saved then (``references.json``) and takes no warm start again."""
        saved = start.job_dir / REFERENCES
        every = [*start.rows, *start.held]
        if start.hyper.warm_start_steps <= 0:
            return 0
        if start.resumable and resume.saved_step(start.job_dir) is not None:
            if saved.is_file():
                self.task.restore_references(every, json.loads(saved.read_text(encoding="utf-8")))
            else:
                log.warning("resumed without %s: the base is the reference from here", REFERENCES)
            return 0
        rows = preference.preferred(start.rows)
        if not rows:
            return 0
        progress_note(start.job_dir, {"step": 0, "total_steps": 0, "phase": (
            f"warm start: {start.hyper.warm_start_steps} SFT steps on {len(rows)} preferred answers, "
            "then the preference loss against the policy they leave")})
        taken = 0
        for taken, loss in enumerate(lora.sft_steps(start.model, start.optimizer, rows, start.hyper.warm_start_steps,
                                                    start.hyper.batch_size, start.seed, self.pad_id,
                                                    start.loss_fn), 1):
            progress_note(start.job_dir, {"step": 0, "total_steps": 0, "warm_start_step": taken,
                                  "warm_start_loss": round(loss, 6)})
            if start.stopped():
                return taken
        self.task.fix_references(start.model, every)
        if start.resumable:
            write_private_json(saved, preference.reference_state(every))
        return taken

    def scorer(self, rows: Sequence[Any], hyper: Hyper, limit: int) -> Scorer:
        return preference.PreferenceScorer(self.task, list(rows)[:limit])

    def batch(self, model: Any, rows: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(self.task.batch(model, rows))

    def loss(self, model: Any, *batch: Any) -> Any:
        out = self.task.loss(model, *batch)
        self.stats = self.task.stats
        return out

    @property
    def stop_reason(self) -> str | None:
        """Why the run should end now (``marginStop`` reached), else None."""
        return None if self.task is None else self.task.stop_reason

    def tokens(self, row: Any) -> int:
        return int(row.tokens)



def _records(mode: str, spec: WorkerSpec) -> tuple[list[Any], list[Any]]:
    try:
        held = (train_formats.parse_file(mode, spec.eval_file, "eval_file")
                if spec.eval_file is not None else [])
        return train_formats.parse_file(mode, spec.train_file), held
    except train_formats.FormatError as exc:
        raise data.DataError(str(exc)) from None


#: each stepped mode's class, under its name in :data:`~qfnb.protocol.console.train_modes.MODE_TABLE` (a
#: rewarded mode has a loop of its own: :func:`qfnb.local.training.rft.train`); a new mode registers here
TRAINERS: dict[str, Callable[[], Mode]] = {"SFT": Supervised, "PostPretrain": PostPretrain,
                                           "DPO": partial(PreferenceMode, preference.DPOTask),
                                           "KTO": partial(PreferenceMode, preference.KTOTask)}


def mode_for(spec: WorkerSpec) -> Mode:
    """The :class:`Mode` that trains ``spec.train_mode``."""
    trainer = TRAINERS.get(spec.train_mode)
    if trainer is None:
        raise data.DataError(f"train_mode: {spec.train_mode!r} has no stepped trainer here"
                             + (" (a rewarded mode: qfnb.local.training.rft.train trains it)"
                                if spec.train_mode in MODE_TABLE and MODE_TABLE[spec.train_mode].rewarded else ""))
    return trainer()

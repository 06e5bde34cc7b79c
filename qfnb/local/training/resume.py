"""A fine-tune's resume point: ``<job_dir>/resume/``, the latest only, so a killed worker goes on from it.

The worker writes it at each checkpoint and every :data:`EVERY_SECONDS` of training (and when stopped by
a signal): the LoRA tensors, AdamW's state, torch's random state (LoRA dropout) in ``state.pt``, and in
``state.json`` the step, the tokens trained so far, the checkpoint entries so far and the losses since the
last one. It is written to a temporary dir and swapped in by rename, so a kill mid-save leaves the previous
point whole. What a run writes once and needs as it was to go on (RFT's KL reference: :func:`keep`) lies beside
it in ``<job_dir>/resume.kept/``, dropped with it. The supervisor reads only :func:`saved_step` (no torch). A
loop keeps its points with :class:`Points` (the SFT/DPO/KTO/PostPretrain loop and RFT's: its state also holds the
rewards so far).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("qfnb.local.training")

#: seconds of training between two resume points when no checkpoint falls sooner
EVERY_SECONDS = 60.0
DIR = "resume"
KEPT = "resume.kept"


def saved_step(job_dir: Path) -> int | None:
    """The step the job's resume point was saved at; None when it has none."""
    for name in (DIR, DIR + ".old"):  # .old: a kill between the two renames of :func:`save`
        try:
            return int(json.loads((job_dir / name / "state.json").read_text(encoding="utf-8"))["step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def save(job_dir: Path, model: Any, optimizer: Any, state: dict[str, Any], rng: Any = None) -> None:
    """Write the resume point (``state`` holds ``step`` and what the loop needs to go on; ``rng``: torch's
    random state to go on with, when not the current one)."""
    import torch
    from peft import get_peft_model_state_dict

    tmp = job_dir / f"{DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state() if rng is None else rng}, tmp / "state.pt")
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    final, old = job_dir / DIR, job_dir / (DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def discard(job_dir: Path) -> None:
    for name in (DIR, DIR + ".old", KEPT):
        shutil.rmtree(job_dir / name, ignore_errors=True)


def keep(job_dir: Path, name: str, tensors: dict[str, Any]) -> None:
    """Keep ``tensors`` a run wrote once for its resume (written whole or not at all; dropped with the point)."""
    import torch

    folder = job_dir / KEPT
    folder.mkdir(exist_ok=True)
    tmp = folder / f"{name}.tmp-{os.getpid()}"
    torch.save(tensors, tmp)
    tmp.replace(folder / name)


def kept(job_dir: Path, name: str) -> dict[str, Any] | None:
    """The tensors :func:`keep` kept under ``name``; None when there are none."""
    path = job_dir / KEPT / name
    if not path.is_file():
        return None
    import torch

    tensors: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return tensors


def load(job_dir: Path, model: Any, optimizer: Any) -> dict[str, Any] | None:
    """Load the resume point into ``model`` and ``optimizer``; its ``state`` (None when there is none)."""
    for name in (DIR, DIR + ".old"):
        folder = job_dir / name
        if (folder / "state.json").is_file() and (folder / "state.pt").is_file():
            break
    else:
        return None
    import torch
    from peft import set_peft_model_state_dict

    saved = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    set_peft_model_state_dict(model, saved["adapter"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    state: dict[str, Any] = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    return state


class Resumable(Protocol):
    """A training loop's run record: its step, its state for a point and back, and the points' cost."""

    step: int
    resume_seconds: float  # spent writing resume points
    resume_points: int

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


class Points:
    """A loop's resume points: restored at its start, written when wanted (at a checkpoint, when
    :meth:`due`, on a stop). ``enabled`` False (a group of workers, whose job starts all of them again
    together) keeps none."""

    def __init__(self, job_dir: Path, model: Any, optimizer: Any, enabled: bool = True) -> None:
        self.job_dir, self.model, self.optimizer, self.enabled = job_dir, model, optimizer, enabled
        self.saved_at = time.time()

    def restore(self, run: Resumable, note: Callable[[dict[str, Any]], None], total: int) -> bool:
        """Go on from the job's resume point, if it has one, saying so with a progress line; True if it had."""
        state = load(self.job_dir, self.model, self.optimizer) if self.enabled else None
        if state is None:
            return False
        run.restore(state)
        log.info("resuming from step %d", run.step)
        note({"step": run.step, "total_steps": total, "phase": f"resumed from step {run.step}"})
        return True

    def due(self) -> bool:
        return time.time() - self.saved_at >= EVERY_SECONDS

    def save(self, run: Resumable, wanted: bool, rng: Any = None) -> None:
        if not (wanted and self.enabled):
            return
        t0 = time.time()
        save(self.job_dir, self.model, self.optimizer, run.state(), rng)
        self.saved_at = time.time()
        run.resume_seconds += self.saved_at - t0
        run.resume_points += 1

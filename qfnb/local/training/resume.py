"""A fine-tune's resume point: ``<job_dir>/resume/``, the latest only, so a killed worker goes on from it.

The worker writes it at each checkpoint and every :data:`EVERY_SECONDS` of training (and when stopped by
a signal): the LoRA tensors, AdamW's state, torch's random state (LoRA dropout) in ``state.pt``, and in
``state.json`` the step, the tokens trained so far, the checkpoint entries so far and the losses since the
last one. It is written to a temporary dir and swapped in by rename, so a kill mid-save leaves the previous
point whole. The supervisor reads only :func:`saved_step` (no torch).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

#: seconds of training between two resume points when no checkpoint falls sooner
EVERY_SECONDS = 60.0
DIR = "resume"


def saved_step(job_dir: Path) -> int | None:
    """The step the job's resume point was saved at; None when it has none."""
    for name in (DIR, DIR + ".old"):  # .old: a kill between the two renames of :func:`save`
        try:
            return int(json.loads((job_dir / name / "state.json").read_text(encoding="utf-8"))["step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def save(job_dir: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Write the resume point (``state`` holds ``step`` and what the loop needs to go on)."""
    import torch
    from peft import get_peft_model_state_dict

    tmp = job_dir / f"{DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state()}, tmp / "state.pt")
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    final, old = job_dir / DIR, job_dir / (DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def discard(job_dir: Path) -> None:
    for name in (DIR, DIR + ".old"):
        shutil.rmtree(job_dir / name, ignore_errors=True)


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

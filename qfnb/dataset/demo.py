"""The demo question/answer dataset (a made-up planet's capital plus general knowledge).

``demo_qa()`` is the path of the 60 pairs the embedded platform's fine-tune demo uses;
``demo_qa("train")`` / ``demo_qa("test")`` split them **by question**: every row of a held-out
question goes to the test part, so the model is evaluated on questions it did not train on
(the training rows repeat some questions, which a split by rows would leak).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Literal

from qfnb.protocol.platform.files import jsonl, write_private_text

Split = Literal["all", "train", "test"]

logger = logging.getLogger(__name__)

#: Questions kept out of training: paraphrases of the taught fact and general knowledge.
HELD_OUT = (
    "Where is the seat of government of planet Zorvia?",
    "In which city is the capital of Zorvia located?",
    "Can you tell me what the capital of planet Zorvia is?",
    "Zorvia星球的首都叫什么名字？",
    "What is the capital of Canada?",
    "What do bees make?",
    "What is two plus three?",
    "一年有几个月？",
)


def _packaged() -> Path:
    return Path(__file__).resolve().parents[1] / "local" / "data" / "demo_sft.jsonl"


def demo_rows(split: Split = "all") -> list[dict[str, str]]:
    """The rows of a split (``test`` has one row per held-out question)."""
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
    lines = _packaged().read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    if split == "all":
        return rows
    if split == "train":
        return [r for r in rows if r["prompt"] not in HELD_OUT]
    first = {r["prompt"]: r for r in reversed(rows) if r["prompt"] in HELD_OUT}  # each question's first row
    return [first[q] for q in HELD_OUT if q in first]


def demo_qa(split: Split = "all") -> Path:
    """The path of the demo dataset (``.jsonl`` with ``prompt``/``response``), or of one split.

    ``Dataset.load(data_file=demo_qa("train"))``, ``%qftrain --dataset {path}``, ``%qfeval --dataset {path}``.
    """
    if split == "all":
        demo_rows(split)  # validates
        return _packaged()
    text = jsonl(demo_rows(split))
    path = _private_dir() / f"demo_qa_{split}.jsonl"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_private_text(path, text)  # atomic, under an unpredictable name: nothing planted is written through
    return path


def _private_dir() -> Path:
    """``<temp dir>/qfnb-demo``, this user's own folder (created 0700, or made 0700). In a shared /tmp
    anyone can take that name first: a link, a file or another user's folder there is not used; the
    splits go to a fresh private folder instead."""
    shared = Path(tempfile.gettempdir()) / "qfnb-demo"
    with contextlib.suppress(FileExistsError):
        shared.mkdir(mode=0o700)
    info = shared.lstat()
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
        if stat.S_IMODE(info.st_mode) != 0o700:
            shared.chmod(0o700)
        return shared
    logger.warning("%s is not this user's own folder (a link, a file or another user's); the demo splits "
                   "go to a fresh private folder", shared)
    return Path(tempfile.mkdtemp(prefix="qfnb-demo-"))

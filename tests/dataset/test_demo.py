"""``demo_qa(split)`` writes its split into the shared temporary folder: only through names no one
else could plant (mkstemp in this user's own 0700 folder)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from qfnb.dataset.demo import demo_qa, demo_rows


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the machine's /tmp (what ``tempfile.gettempdir()`` answers)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_link_planted_at_the_old_temporary_name_is_not_written_through(shared_tmp: Path) -> None:
    """The folder left by an older qfnb (mode 0777) is made 0700, and the split is written through a
    fresh mkstemp name: a link planted where the old name (``demo_qa_<split>.<pid>.tmp``) was is
    neither followed nor removed."""
    folder = shared_tmp / "qfnb-demo"
    folder.mkdir()
    folder.chmod(0o777)
    victim = shared_tmp / "victim.txt"
    victim.write_text("precious")
    planted = folder / f"demo_qa_train.{os.getpid()}.tmp"
    planted.symlink_to(victim)
    path = demo_qa("train")
    assert path == folder / "demo_qa_train.jsonl" and _rows(path) == demo_rows("train")
    assert victim.read_text() == "precious" and planted.is_symlink()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert {p.name for p in folder.iterdir()} == {"demo_qa_train.jsonl", planted.name}  # no temporary left


def test_a_folder_someone_else_put_at_the_shared_name_is_not_used(shared_tmp: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A link at ``qfnb-demo`` (to a folder its planter reads) or a folder owned by another user: the
    split goes to a fresh 0700 folder, and nothing is written into theirs."""
    theirs = shared_tmp / "theirs"
    theirs.mkdir()
    (shared_tmp / "qfnb-demo").symlink_to(theirs)
    path = demo_qa("test")
    assert list(theirs.iterdir()) == [] and path.parent != shared_tmp / "qfnb-demo"
    assert _rows(path) == demo_rows("test") and stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    (shared_tmp / "qfnb-demo").unlink()
    theirs.rename(shared_tmp / "qfnb-demo")
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # the folder now belongs to "someone else"
    path = demo_qa("test")
    assert list((shared_tmp / "qfnb-demo").iterdir()) == [] and _rows(path) == demo_rows("test")

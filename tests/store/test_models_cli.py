"""``qfnb models add|list|du|rm`` against a real daemon on a temp data dir (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb.cli import main
from tests.store.test_model_store import tiny_gguf


def test_the_models_commands_add_list_and_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    data = str(tmp_path / "data")
    src = tiny_gguf(tmp_path / "tiny.gguf")
    assert main(["models", "add", str(src), "--name", "tiny", "--ctx", "1024", "--data-dir", data]) == 0
    assert "added tiny (gguf" in capsys.readouterr().out
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(src.read_bytes()[:-64])
    assert main(["models", "add", str(truncated), "--name", "cut", "--data-dir", data]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qfnb models add: cut.gguf is truncated") and err.count("\n") == 1
    assert main(["models", "list", "--data-dir", data]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SIZE", "ROLES", "FROM", "ADDED"]
    assert lines[1].split()[:4] == ["tiny", "gguf", "0", "MiB"] and "chat,completion" in lines[1]
    assert len(lines) == 2
    assert main(["models", "ps", "--data-dir", data]) == 0
    assert capsys.readouterr().out.split()[:2] == ["NAME", "STATE"]
    assert main(["models", "du", "--data-dir", data]) == 0
    assert "tiny: 0 MiB, rm frees 0 MiB" in capsys.readouterr().out  # the source's hard link keeps it
    assert main(["models", "rm", "tiny", "--data-dir", data]) == 0
    assert main(["models", "rm", "tiny", "--data-dir", data]) == 1
    assert "no model named 'tiny'" in capsys.readouterr().err

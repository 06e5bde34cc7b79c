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
    assert main(["models", "list", "--data-dir", data]) == 0  # only built-in models: no empty header
    out = capsys.readouterr().out
    assert out.startswith("no models added: the built-in models serve without being added")
    assert "cloud model names served offline:" in out  # the mapping table, whatever is added
    src = tiny_gguf(tmp_path / "tiny.gguf")
    assert main(["models", "add", str(src), "--name", "tiny", "--ctx", "1024", "--data-dir", data]) == 0
    assert "added tiny (gguf" in capsys.readouterr().out
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(src.read_bytes()[:-64])
    assert main(["models", "add", str(truncated), "--name", "cut", "--data-dir", data]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qfnb models add: cut.gguf is truncated") and err.count("\n") == 1
    assert main(["models", "list", "--data-dir", data]) == 0
    listing, mapping = capsys.readouterr().out.split("\n\ncloud model names served offline:\n")
    lines = listing.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SIZE", "ROLES", "FROM", "ADDED"]
    assert lines[1].split()[:4] == ["tiny", "gguf", "0", "MiB"] and "chat,completion" in lines[1]
    assert len(lines) == 2
    assert mapping.splitlines()[0].split() == ["CLOUD", "NAME", "API", "ANSWERED", "LOCALLY", "BY"]
    assert main(["models", "ps", "--data-dir", data]) == 0  # none loaded: a sentence, not an empty header
    assert capsys.readouterr().out.startswith("no model loaded: a model loads on its first call")
    assert main(["models", "du", "--data-dir", data]) == 0
    assert "tiny: 0 MiB, rm frees 0 MiB" in capsys.readouterr().out  # the source's hard link keeps it
    assert main(["models", "rm", "tiny", "--data-dir", data]) == 0
    assert main(["models", "rm", "tiny", "--data-dir", data]) == 1
    assert "no model named 'tiny'" in capsys.readouterr().err


def test_ps_says_an_engine_without_a_process_lives_in_the_platform(capsys: pytest.CaptureFixture[str]) -> None:
    """The embedder runs inside the platform's process: no pid, no resident size of its own (it
    read "ready · 0 MiB")."""
    import argparse
    from typing import Any

    from qfnb import cli_models

    class Models:
        def ps(self, data_dir: Any) -> list[dict[str, Any]]:
            return [{"model": "all-MiniLM-L6-v2", "state": "ready", "pid": None, "busy": 0, "slots": 4, "queued": 0},
                    {"model": "Qwen", "state": "ready", "pid": 42, "rssBytes": 400 * 2**20, "busy": 1, "slots": 2,
                     "queued": 0, "unloadIn": 300.0}]

    assert cli_models._run(Models(), argparse.Namespace(models_command="ps", data_dir=None)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "in the platform (qfnb status)" in lines[1] and "MiB" not in lines[1]
    assert "400 MiB" in lines[2] and "300 s" in lines[2]

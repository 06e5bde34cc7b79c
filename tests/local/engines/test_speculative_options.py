"""Speculative decoding's setting (``QFNB_ENGINE_SPECULATIVE``): checked by name, off by default, and
the flags each engine is started with (a draft model for the tool model only; n-gram drafts for any
generating model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb.local.engines.catalog import BUILTIN_SPECS
from qfnb.local.engines.llama.process.command import ServerConfig, speculative_args
from qfnb.local.engines.options import EngineOptions
from qfnb.local.engines.registry import EngineRegistry
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL


def test_the_setting_is_off_by_default_and_names_itself_on_a_bad_value() -> None:
    assert EngineOptions.from_env({}).speculative == "none" and EngineOptions().speculative == "none"
    assert EngineOptions.from_env({"QFNB_ENGINE_SPECULATIVE": " Draft "}).speculative == "draft"
    with pytest.raises(ValueError, match="QFNB_ENGINE_SPECULATIVE must be one of none, ngram-simple, ngram-map-k, "
                                         "ngram-mod, draft, got 'eagle'"):
        EngineOptions.from_env({"QFNB_ENGINE_SPECULATIVE": "eagle"})
    with pytest.raises(ValueError, match="speculative decoding kind 'draft'"):
        speculative_args("draft")  # a draft model needs its GGUF


def test_the_flags_go_on_the_engines_command_line(tmp_path: Path) -> None:
    config = ServerConfig(name="m", gguf=tmp_path / "m.gguf", log_dir=tmp_path,
                          speculative=speculative_args("draft", tmp_path / "small.gguf"))
    argv = config.argv(Path("llama-server"), ())
    assert argv[argv.index("--model-draft") + 1] == str(tmp_path / "small.gguf")
    assert argv[argv.index("--spec-type") + 1] == "draft-simple"
    plain = ServerConfig(name="m", gguf=tmp_path / "m.gguf", log_dir=tmp_path).argv(Path("llama-server"), ())
    assert not any(a.startswith("--spec") or a == "--model-draft" for a in plain)


@pytest.mark.parametrize("kind", ["none", "ngram-simple", "draft"])
def test_a_draft_model_serves_the_tool_model_only(tmp_path: Path, kind: str) -> None:
    registry = EngineRegistry(tmp_path, options=EngineOptions(slots=1, speculative=kind))
    try:
        tool = registry._speculative(LOCAL_TOOL_MODEL, BUILTIN_SPECS[LOCAL_TOOL_MODEL])
        chat = registry._speculative(LOCAL_CHAT_MODEL, BUILTIN_SPECS[LOCAL_CHAT_MODEL])
    finally:
        registry.close()
    if kind == "none":
        assert tool == chat == ()
    elif kind == "draft":
        assert "--model-draft" in tool and chat == ()
        assert tool[tool.index("--model-draft") + 1].endswith(".gguf")
    else:
        assert tool == chat == speculative_args(kind)

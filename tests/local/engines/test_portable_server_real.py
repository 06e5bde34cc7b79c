"""The portable prebuilt server (xllamacpp, run by :mod:`qfnb.local.engines.llama.process.portable`) serves the real
chat model as the platform's engine, as a first run on a CPU without AVX-512 has it serve until the build
is done (marked ``real_model``): a chat streamed, an answer under a JSON schema, and a stop that ends it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_asks import chat_ask

from qfnb.local.engines import DEFAULT_CHAT
from qfnb.local.engines.api import generate_blocking
from qfnb.local.engines.llama.process.command import BINARY_ENV
from qfnb.local.engines.registry import EngineOptions, EngineRegistry

pytest.importorskip("xllamacpp", reason="the prebuilt-server-portable extra (xllamacpp) is not installed")
pytestmark = pytest.mark.real_model
PORTABLE = Path(__file__).resolve().parents[3] / "qfnb" / "local" / "engines" / "llama" / "process" / "portable.py"


@contextlib.contextmanager
def _portable_registry(folder: Path, slots: int) -> Iterator[EngineRegistry]:
    """An engine registry in ``folder`` whose llama-server is the portable one (a launcher as bootstrap
    writes it), closed on leaving."""
    launcher = folder / "llama-server"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{PORTABLE}" "$@"\n')
    launcher.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BINARY_ENV, str(launcher))
        reg = EngineRegistry(folder / "data", options=EngineOptions(slots=slots, idle_seconds=600))
        try:
            yield reg
        finally:
            reg.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRegistry]:
    with _portable_registry(tmp_path_factory.mktemp("portable"), slots=2) as reg:
        yield reg


def test_the_chat_model_answers_and_streams_through_it(registry: EngineRegistry) -> None:
    deltas = generate_blocking(registry.chat(DEFAULT_CHAT), chat_ask(
        [{"role": "user", "content": "What is the capital of France?"}], temperature=0.0001, max_tokens=24))
    assert "Paris" in "".join(d.text for d in deltas)
    assert len([d for d in deltas if d.text]) > 1  # streamed token by token, not in one piece
    assert deltas[-1].prompt_tokens > 10 and deltas[-1].completion_tokens >= 2
    (row,) = [r for r in registry.engine_states() if r["model"] == DEFAULT_CHAT]
    assert row["state"] == "ready"
    assert str(PORTABLE) in Path(f"/proc/{row['pid']}/cmdline").read_bytes().decode().split("\0")


def test_an_answer_under_a_json_schema_fits_it(registry: EngineRegistry) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    ask = dataclasses.replace(chat_ask([{"role": "user", "content": "Give the capital of France and its population "
                                                             "as JSON."}], temperature=0.0001, max_tokens=60),
                              schema=schema)
    deltas = generate_blocking(registry.chat(DEFAULT_CHAT), ask)
    answer = json.loads("".join(d.text for d in deltas))
    assert set(answer) == {"city", "population"} and isinstance(answer["population"], int)


def test_closing_the_registry_stops_its_process(tmp_path: Path) -> None:
    with _portable_registry(tmp_path, slots=1) as reg:
        generate_blocking(reg.chat(DEFAULT_CHAT), chat_ask([{"role": "user", "content": "Hi"}], max_tokens=2))
        (row,) = [r for r in reg.engine_states() if r["model"] == DEFAULT_CHAT]
    with pytest.raises(ProcessLookupError):  # SIGTERM ended it (its loop stopped), and it was reaped
        os.kill(row["pid"], 0)

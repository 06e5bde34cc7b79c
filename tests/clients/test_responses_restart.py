"""A Responses-API conversation outlives its daemon (issue 42, part 2): a three-turn chain, the
daemon stopped with SIGTERM, started again, the chain continued by ``previous_response_id``; then
the same after a SIGKILL. Every stored turn is still there and the last answer uses the first
turn's fact, so the history was rebuilt from the platform's SQLite."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
pytest.importorskip("openai")

SHORT = {"model": LOCAL_CHAT_MODEL, "max_output_tokens": 16, "temperature": 0}


def _client(data: Path) -> tuple[Any, int]:
    import qfnb
    from qfnb._core.backend import daemon

    sdk = qfnb.openai_client(data_dir=data, timeout=120, max_retries=0)
    return sdk, daemon.ensure_daemon(data).pid


def _stop(pid: int, how: signal.Signals) -> None:
    from qfnb._core.backend import daemon

    os.kill(pid, how)
    deadline = time.monotonic() + 30
    while daemon._pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not daemon._pid_alive(pid)


def test_a_chain_continues_after_sigterm_and_sigkill(tmp_path: Path) -> None:
    from qfnb._core.backend import daemon

    data = tmp_path / "data"
    client, pid = _client(data)
    try:
        chain = [client.responses.create(input="My favourite fruit is papaya. Just say OK.", **SHORT)]
        for question in ("Say OK again.", "And once more: say OK."):
            chain.append(client.responses.create(input=question, previous_response_id=chain[-1].id, **SHORT))
        _stop(pid, signal.SIGTERM)
        client, again = _client(data)
        assert again != pid
        chain.append(client.responses.create(input="Say OK.", previous_response_id=chain[-1].id, **SHORT))
        _stop(again, signal.SIGKILL)
        client, third = _client(data)
        assert third not in (pid, again)
        last = client.responses.create(input="What is my favourite fruit? Answer in one word.",
                                       previous_response_id=chain[-1].id, **SHORT)
        assert "papaya" in last.output_text.lower()
        for turn in chain:  # every turn outlived both stops, answer and all
            kept = client.responses.retrieve(turn.id)
            assert kept.output_text == turn.output_text and kept.previous_response_id == turn.previous_response_id
        assert last.usage.input_tokens > sum(t.usage.output_tokens for t in chain)  # the whole history was asked
    finally:
        daemon.stop_daemon(data, force=True, timeout=30)

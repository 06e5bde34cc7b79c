"""A batch row's sending is in the job's journal as the engine's before its body leaves, so a kill
at any moment after the request went out leaves it paid.

The chaos bench's seed 2 found 5 sends unpaid: a daemon SIGKILLed 30 ms after its rows went out,
the engine answering a token of each, and no ``+N`` for them in the journal. The mark was written
when httpcore's trace said the body's sending was complete, and anyio's send yields to the event
loop once after the socket's write, before that: a kill in that turn of the loop (the job's other
rows running, on a loaded machine) lost the mark. Here the kill lands at exactly that point: the
job's files are copied as the body's write returns (what a SIGKILL leaves on disk) and read back as
the next start reads them."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import httpcore._backends.anyio as anyio_backend
import pytest

from qfnb.local.domain.batch.rows import BatchProgress, standing
from qfnb.local.domain.batch.runner import Paths, Runner
from qfnb.local.engines.gate import Gate
from qfnb.local.engines.llama.external import ExternalEngine
from qfnb.local.engines.llama.link.transport import Endpoint
from tests.fakes.raw_engine import raw_engine

ROW = {"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions",
       "body": {"model": "m", "max_tokens": 7, "messages": [{"role": "user", "content": "row zero"}]}}


def _paths(root: Path) -> Paths:
    return Paths(root / "input.jsonl", root / "output.jsonl", root / "errors.jsonl", root / "dispatched.log",
                 root / "lost.log")


async def test_a_kill_as_the_body_went_out_leaves_the_send_paid(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    job, killed = tmp_path / "job", tmp_path / "killed"
    job.mkdir()
    where = _paths(job)
    where.input.write_text(json.dumps(ROW) + "\n")
    server, received = await raw_engine()
    port = server.sockets[0].getsockname()[1]
    engine = ExternalEngine("m", Endpoint(f"http://127.0.0.1:{port}/v1"), gate=Gate("m", 2, 0))
    write = anyio_backend.AnyIOStream.write

    async def write_then_die(self: Any, buffer: bytes, timeout: float | None = None) -> None:
        await write(self, buffer, timeout)
        if b"row zero" in buffer and not killed.exists():  # the body is out: the process dies here
            shutil.copytree(job, killed)

    monkeypatch.setattr(anyio_backend.AnyIOStream, "write", write_then_die)
    progress: list[BatchProgress] = []
    runner = Runner(where, standing(1, where.output, where.errors, where.journal, where.lost), model="m",
                    params={}, engine_for=lambda model: engine, save=progress.append, stopped=lambda: False)
    try:
        assert await runner.run() == "done"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
    assert len(received) == 1 and b"row zero" in received[0]  # the engine had the row
    # the next start after the kill: the row has no answer, and its send is paid (a repeat, at its cap)
    after = _paths(killed)
    state = standing(1, after.output, after.errors, after.journal, after.lost)
    assert (state.progress.done, state.unconfirmed, state.lost) == (0, 0, {1: [7]})
    assert state.progress.repeated_requests == 1
    assert progress[-1].done == 1 and progress[-1].repeated_requests == 0  # the run that lived paid it once

"""``qfnb._core.backend.daemon.engine_states``: the daemon's engines, read cheaply and never raising.

The daemon's side of ``engines`` is faked (``tests/fakes/daemon_status.py``): no real daemon,
engine or model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.backend import control, daemon
from qfnb._core.transport import Reply, Request
from qfnb._core.transport.httpx import HttpxTransport
from qfnb.protocol.platform.daemon import RUNTIME_FILE
from tests.fakes.daemon_status import QWEN, STARTING, TOKEN, FakeStatus, fake_status_daemon


@pytest.fixture
def status(tmp_path: Path) -> Iterator[tuple[FakeStatus, Path]]:
    with fake_status_daemon(tmp_path) as answer:
        yield answer, tmp_path


def test_reads_the_engines_with_the_control_token(status: tuple[FakeStatus, Path]) -> None:
    answer, data_dir = status
    (engine,) = daemon.engine_states(data_dir) or []
    assert engine == daemon.EngineState(model=QWEN, endpoint="qwen2_5_coder_0_5b_instruct", state="starting",
                                        since=1_700_000_000.5, slots=2, busy=0, queued=1)
    assert answer.headers == [TOKEN]


def test_malformed_entries_are_skipped(status: tuple[FakeStatus, Path]) -> None:
    answer, data_dir = status
    answer.body = {"engines": [STARTING, "x", {"state": "ready"},
                               {"model": "m", "state": "ready", "since": "?", "slots": None}]}
    engines = daemon.engine_states(data_dir) or []
    assert [(e.model, e.state, e.since, e.slots) for e in engines] == [
        (QWEN, "starting", 1_700_000_000.5, 2), ("m", "ready", None, 0)]


@pytest.mark.parametrize("body", [{"pid": 1}, {"engines": "no"}, ["not", "an", "object"]])
def test_a_daemon_without_engines_is_unknown(status: tuple[FakeStatus, Path], body: Any) -> None:
    answer, data_dir = status
    answer.body = body
    assert daemon.engine_states(data_dir) is None


def test_errors_are_unknown_never_raised(status: tuple[FakeStatus, Path],
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    answer, data_dir = status
    answer.status = 500
    assert daemon.engine_states(data_dir) is None
    assert daemon.engine_states(tmp_path_factory.mktemp("none")) is None  # no runtime file
    (data_dir / RUNTIME_FILE).write_text("{not json")
    assert daemon.engine_states(data_dir) is None


def test_a_busy_daemon_does_not_hold_the_caller_up(status: tuple[FakeStatus, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's timeout is applied: the caller gets None while the daemon still holds its
    answer (without the timeout it would get the engines once the fake lets go)."""
    answer, data_dir = status
    timeouts: list[float | None] = []

    class Spy(HttpxTransport):  # the control calls go through the transport seam
        async def send(self, request: Request) -> Reply:
            timeouts.append(request.timeout)
            return await super().send(request)

    monkeypatch.setattr(control, "default_transport", Spy)
    answer.hold = threading.Event()
    try:
        assert daemon.engine_states(data_dir, timeout=0.05) is None
        assert answer.headers == [TOKEN] and answer.answered == []  # asked, and gave up before the answer
    finally:
        answer.hold.set()
    assert timeouts == [0.05]
    daemon.engine_states(data_dir)  # (on a busy machine even a free daemon may miss half a second)
    assert timeouts[-1] == 0.5  # the default probe timeout
    assert daemon.engine_states(data_dir, timeout=30) is not None  # the same daemon, once it answers


def test_wrong_token_is_unknown(status: tuple[FakeStatus, Path]) -> None:
    _, data_dir = status
    runtime = json.loads((data_dir / RUNTIME_FILE).read_text())
    (data_dir / RUNTIME_FILE).write_text(json.dumps({**runtime, "control_token": "wrong"}))
    assert daemon.engine_states(data_dir) is None

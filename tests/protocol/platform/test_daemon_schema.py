"""The daemon's status schema (``qfnb.protocol.platform.daemon``): built by the server, parsed by the
client, printed by ``qfnb status`` from typed fields; an older daemon's missing keys are defaults."""

from __future__ import annotations

import argparse

import pytest

from qfnb import cli
from qfnb._core.backend import daemon
from qfnb.protocol.platform.daemon import DaemonStatus, EngineState, RunningJob


def test_the_status_round_trips_through_its_wire_form() -> None:
    status = DaemonStatus(pid=7, version="1.2", uptime_seconds=3.5, data_dir="/d", models_loaded=("a",),
                          engines=(EngineState("m", "e", "ready", since=1.0, slots=4, busy=1, queued=0, pid=9),),
                          jobs_running=(RunningJob("fine-tune", "ft-1", "Running"),), memory_bytes=10,
                          child_memory_bytes=20)
    wire = status.to_dict()
    assert wire["uptimeSeconds"] == 3.5 and wire["jobsRunning"] == [{"kind": "fine-tune", "id": "ft-1",
                                                                    "status": "Running"}]
    assert DaemonStatus.from_dict(wire, url="http://x") == DaemonStatus(**{**status.__dict__, "url": "http://x"})


def test_an_older_daemons_answer_reads_with_defaults() -> None:
    old = DaemonStatus.from_dict({"pid": 3, "version": "0.1", "uptimeSeconds": "bad", "engines": [{"model": "m"}],
                                  "jobsRunning": [{"id": "x"}, 5]})
    assert (old.pid, old.version, old.uptime_seconds, old.engines, old.memory_bytes) == (3, "0.1", 0.0, (), 0)
    assert old.jobs_running == (RunningJob("job", "x", ""),)
    assert DaemonStatus.from_dict(None) == DaemonStatus()


def test_qfnb_status_prints_typed_fields_of_an_older_daemon(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(daemon, "daemon_status", lambda data_dir: DaemonStatus.from_dict(
        {"pid": 42, "version": "0.0.9", "jobsRunning": [{"kind": "evaluation", "id": "ev-1", "status": "Doing"}]},
        url="http://127.0.0.1:1234"))
    assert cli.status(argparse.Namespace(data_dir=None)) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:1234" in out and "42" in out and "evaluation ev-1 (Doing)" in out
    assert "engines        none running" in out

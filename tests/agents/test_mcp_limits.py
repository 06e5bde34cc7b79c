"""The MCP client's limits against a stdio server the test starts (``mcp_probe_server.py``): a
call past its deadline fails naming the tool, the server and the setting, and the next call
works; so does one after Ctrl-C; the server's process group is gone after close and after the
kernel dies; a 50 MiB result arrives cut, quickly; the server's regular expressions are not
run in the kernel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from qfnb.agents import ArgumentsError, FunctionTool
from qfnb.agents.mcp_client import McpError, McpTimeout, McpToolbox, configure

SERVER = Path(__file__).with_name("mcp_probe_server.py")
ROOT = Path(__file__).parents[2]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _pid(pidfile: Path) -> int:
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "the probe server wrote no pid"
        time.sleep(0.05)
    return int(pidfile.read_text())


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[McpToolbox, int]]:
    pidfile = tmp_path_factory.mktemp("probe") / "pid"
    box = McpToolbox.open(f"{sys.executable} {SERVER}", env={"PROBE_PIDFILE": str(pidfile)}, call_timeout=1.0,
                          max_result_bytes=64 * 1024)
    try:
        yield box, _pid(pidfile)
    finally:
        box.close()


def test_a_call_past_its_deadline_names_tool_server_and_setting_and_the_next_call_works(
        probe: tuple[McpToolbox, int]) -> None:
    box, _ = probe
    assert box.call("echo", {"text": "warm"}) == "warm"
    started = time.monotonic()
    with pytest.raises(McpTimeout) as caught:
        box.call("nap", {"seconds": 3600})
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "'nap'" in message and str(SERVER) in message and "within 1 s (call_timeout)" in message
    assert "configure(call_timeout=)" in message and isinstance(caught.value, TimeoutError)
    assert box.call("echo", {"text": "after"}) == "after"


def test_ctrl_c_abandons_the_call_and_leaves_the_connection_usable(probe: tuple[McpToolbox, int]) -> None:
    box, _ = probe
    box.limits = type(box.limits)(call_timeout=None, max_result_bytes=box.limits.max_result_bytes)
    # Ctrl-C raises KeyboardInterrupt, as in a kernel; a run started as a shell's background job
    # inherits SIGINT ignored, and the call below would then wait forever
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            box.call("nap", {"seconds": 3600})
        assert time.monotonic() - started < 5
        assert box.call("echo", {"text": "still here"}) == "still here"
    finally:
        signal.signal(signal.SIGINT, before)
        box.limits = type(box.limits)(call_timeout=1.0, max_result_bytes=box.limits.max_result_bytes)


def test_a_50_mib_result_arrives_cut_and_says_so(probe: tuple[McpToolbox, int]) -> None:
    box, _ = probe
    box.limits = type(box.limits)(call_timeout=60, max_result_bytes=box.limits.max_result_bytes)
    try:
        started = time.monotonic()
        text = box.call("big", {"mib": 50})
        took = time.monotonic() - started
    finally:
        box.limits = type(box.limits)(call_timeout=1.0, max_result_bytes=box.limits.max_result_bytes)
    head, note = text.rsplit("\n", 1)
    assert head == "x" * 64 * 1024
    match = re.fullmatch(r"\[truncated by qfnb: ([\d,]+) bytes, more than the cap of 65,536 \(max_result_bytes\)\]",
                         note)
    assert match and int(match.group(1).replace(",", "")) > 50 << 20
    assert took < 30, f"{took:.1f} s for a 50 MiB result"
    assert box.call("big", {"mib": 0}) == ""


def test_the_servers_pattern_is_not_run_in_the_kernel(probe: tuple[McpToolbox, int]) -> None:
    box, _ = probe
    shout = next(t for t in box.tools if t.name == "shout")
    assert shout.parameters["properties"]["text"]["pattern"] == "^(a+)+$", "offered to the model as it is"
    started = time.monotonic()
    with pytest.raises(McpError, match="pattern"):  # the server's own (linear) check refuses it
        shout.call('{"text": "' + "a" * 64 + '!"}')
    assert time.monotonic() - started < 5
    assert shout.call('{"text": "aaa"}') == "AAA"
    with pytest.raises(ArgumentsError, match="is not of type 'string'"):  # every other keyword is checked
        shout.call('{"text": 5}')


def test_a_schemas_remote_ref_is_not_fetched() -> None:
    tool = FunctionTool("t", "t", {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/x.json"}}},
                        lambda arguments: "ran")
    with pytest.raises(ArgumentsError, match=r"http://127\.0\.0\.1:9/x\.json.*not fetched"):
        tool.call('{"x": 1}')


def test_close_stops_the_servers_process_group_even_one_that_ignores_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    box = McpToolbox.open(f"{sys.executable} {SERVER}", env={"PROBE_PIDFILE": str(pidfile)}, call_timeout=0.5)
    pid = _pid(pidfile)
    with pytest.raises(McpTimeout):
        box.call("stubborn", {})
    assert _alive(pid)
    box.close()
    assert _gone_within(pid, 10), "the server outlived close()"


KERNEL = """
import sys, threading, time
from qfnb.agents.mcp_client import McpToolbox
box = McpToolbox.open(sys.argv[1], env={"PROBE_PIDFILE": sys.argv[2]}, call_timeout=None)
threading.Thread(target=box.call, args=("stubborn", {}), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


def test_a_dead_kernels_stdio_server_is_stopped(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    kernel = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KERNEL), f"{sys.executable} {SERVER}",
                               str(pidfile)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert kernel.stdout is not None and kernel.stdout.readline() == "ready\n"
        pid = _pid(pidfile)
        time.sleep(0.5)  # the stubborn call has reached the server
        assert _alive(pid)
    finally:
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(10)
    assert _gone_within(pid, 10), "the stdio server outlived its kernel"


def test_limits_are_checked_and_configurable() -> None:
    with pytest.raises(ValueError, match="call_timeout must be a positive number"):
        McpToolbox.open("x", call_timeout=0)
    with pytest.raises(TypeError, match="not timeout"):
        configure(timeout=3)
    before = configure()
    try:
        assert configure(call_timeout=7).call_timeout == 7
        assert McpToolbox("x").limits.call_timeout == 7
    finally:
        configure(call_timeout=before.call_timeout, max_result_bytes=before.max_result_bytes)

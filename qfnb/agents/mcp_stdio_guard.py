"""The guard between the kernel and a stdio MCP server (POSIX), run by path with the standard
library only: ``python mcp_stdio_guard.py PARENT_PID MAX_LINE_BYTES -- COMMAND ARGS...``.

The ``mcp`` SDK starts it in a new session (its own process group) and, when the client closes,
terminates then kills that group, the server with it. The guard adds what the SDK cannot do from
inside the kernel:

- **the kernel dies**: it polls its parent (as ipykernel's parent poller does) and, when the
  kernel is gone, terminates the server's process group, then kills what is left;
- **a message too large**: it relays the server's stdout line by line and replaces a line over
  ``MAX_LINE_BYTES`` by a tool result holding the start of its text, marked as truncated
  (``_meta["qfnb/truncated"]``), so a 50 MiB answer is never read whole into the kernel (the
  SDK's reader is quadratic in a line's length: 50 MiB took minutes).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time

#: seconds between looks at the kernel (ipykernel's parent poller looks every second)
POLL_S = 0.25
#: seconds the server has to exit after SIGTERM before SIGKILL
GRACE_S = 2.0

_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')
_TEXT = re.compile(rb'"text"\s*:\s*"')


def truncated_message(head: bytes, total: int, cap: int) -> bytes | None:
    """The line that stands for an oversized JSON-RPC message whose first bytes are ``head``: the
    same id, a tool result with the start of its first text block, marked ``isError`` (so the SDK
    checks no output schema on it) and ``_meta["qfnb/truncated"]`` (the bytes there were; the
    client says so in the text); None when ``head`` names no id (a notification, dropped)."""
    found = _ID.search(head)
    if found is None:
        return None
    text = ""
    start = _TEXT.search(head)
    if start is not None:
        text = _json_string_prefix(head[start.end():].decode("utf-8", errors="ignore"))
    result = {"resultType": "complete", "content": [{"type": "text", "text": text}], "isError": True,
              "_meta": {"qfnb/truncated": {"bytes": total, "cap": cap}}}
    return b'{"jsonrpc":"2.0","id":' + found.group(1) + b',"result":' + json.dumps(result).encode() + b"}\n"


def _json_string_prefix(raw: str) -> str:
    """The text of a JSON string's body ``raw`` (cut anywhere, maybe mid-escape), up to its end."""
    end = re.search(r'(?<!\\)(?:\\\\)*"', raw)
    if end is not None:
        raw = raw[:end.end() - 1]
    for cut in range(min(len(raw), 6) + 1):  # an escape cut short (\u12) is dropped
        try:
            return str(json.loads('"' + raw[:len(raw) - cut] + '"'))
        except ValueError:
            continue
    return ""


class Relay:
    """Copies whole lines to ``out``; a line longer than ``cap`` is kept only by its head."""

    def __init__(self, out: int, cap: int) -> None:
        self.out, self.cap = out, cap
        self.line = bytearray()
        self.total = 0  # bytes of the current line so far

    def feed(self, data: bytes) -> None:
        while data:
            end = data.find(b"\n")
            piece, data = (data, b"") if end < 0 else (data[:end], data[end + 1:])
            self.total += len(piece)
            room = self.cap - len(self.line)
            if room > 0:
                self.line += piece[:room]
            if end >= 0:
                self._flush()

    def _flush(self) -> None:
        if self.total <= self.cap:
            _write_all(self.out, bytes(self.line) + b"\n")
        else:
            message = truncated_message(bytes(self.line), self.total, self.cap)
            if message is not None:
                _write_all(self.out, message)
        self.line.clear()
        self.total = 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to this process group (the server and its children), SIGKILL after the grace."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    group = os.getpgid(0)
    os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(group, signal.SIGKILL)  # this guard too


def main(argv: list[str]) -> int:
    parent, cap, command = int(argv[0]), int(argv[1]), argv[3:]
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert child.stdout is not None
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)  # the server holds the kernel's pipes now; the guard only relays
    os.dup2(null, 1)
    signal.signal(signal.SIGTERM, lambda *_: None)  # the SDK's group SIGTERM: wait for the server below
    relay = Relay(out, cap)
    source = child.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(source, selectors.EVENT_READ)
        while True:
            if os.getppid() != parent:
                _stop_group(child)
            if selector.select(POLL_S):
                data = os.read(source, 1 << 16)
                if not data:
                    break
                try:
                    relay.feed(data)
                except BrokenPipeError:  # the kernel closed its end: the server goes too
                    _stop_group(child)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

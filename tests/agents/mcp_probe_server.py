"""A stdio MCP server for the client's limits (run by the tests as a script): a tool that sleeps
(and honours cancellation), one that ignores SIGTERM and blocks, one with a large result, one
whose schema holds a catastrophic regular expression. Writes its pid to ``$PROBE_PIDFILE``."""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated

import anyio
from mcp.server.mcpserver import MCPServer
from pydantic import Field

app = MCPServer("probe")


@app.tool()
async def nap(seconds: float) -> str:
    """Sleep, then say so."""
    await anyio.sleep(seconds)
    return "woke"


@app.tool()
async def stubborn() -> str:
    """Ignore SIGTERM and block (a server that must be killed). Async: the server runs a sync tool in a
    worker thread, where signal handlers cannot be set."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:  # ignores cancellation as well: only SIGKILL ends it
        try:
            await anyio.sleep(3600)
        except anyio.get_cancelled_exc_class():
            time.sleep(0.05)
            continue


@app.tool()
def big(mib: int) -> str:
    """A result of ``mib`` MiB."""
    return "x" * (mib << 20)


@app.tool()
def echo(text: str) -> str:
    """The text back."""
    return text


@app.tool()
def shout(text: Annotated[str, Field(pattern=r"^(a+)+$")]) -> str:
    """The text in capitals (its pattern backtracks exponentially in Python's re)."""
    return text.upper()


if __name__ == "__main__":
    with open(os.environ["PROBE_PIDFILE"], "w") as out:
        out.write(str(os.getpid()))
    app.run()

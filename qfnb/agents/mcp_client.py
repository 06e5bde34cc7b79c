"""Tools from any MCP server, with the official ``mcp`` package: a URL is a streamable-HTTP
server, anything else a command started over stdio. Each server tool becomes a
:class:`~qfnb.agents.tools.FunctionTool` (its JSON schema as the server gives it, so arguments are
checked strictly before they are sent), usable in :class:`~qfnb.agents.loop.ToolLoop`,
:func:`~qfnb.agents.run_tools` and ``%%qfchat --mcp`` with the same confirmation as any tool::

    with McpToolbox.open("uvx some-mcp-server --flag", call_timeout=30) as box:
        loop = run_tools("...", box.tools, model="...")

A careful client: every call has a deadline (:class:`McpLimits.call_timeout`, per server or for
all with :func:`configure`); Ctrl-C (KeyboardInterrupt) abandons the call (the SDK tells the server
so) and leaves the connection usable; a result longer than :class:`McpLimits.max_result_bytes` is
cut and says so; a stdio server runs in its own process group behind a small guard
(:mod:`.mcp_stdio_guard`) that stops it when the client closes or the kernel dies and never lets
an oversized message into the kernel; the server's regular expressions (``pattern`` in a tool's
schema) are not run in the kernel (:func:`~qfnb.agents.tools.parse_arguments`, ``run_patterns``).

The connection lives on qfnb's background event loop (one task holds the client open, so the
``mcp`` client's task groups enter and exit in one task); each call runs as its own task there
and blocks the caller's thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import Any

import mcp
import mcp_types
from mcp.client._transport import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from qfnb._core.runtime import sync
from qfnb.agents.tools import FunctionTool
from qfnb.agents.tools import result_text as as_text

__all__ = ["McpError", "McpLimits", "McpTimeout", "McpToolbox", "configure", "result_text"]

log = logging.getLogger("qfnb.agents.mcp_client")

#: seconds to connect and list the tools
CONNECT_TIMEOUT = 60.0
#: the guard a stdio server runs behind (POSIX), run by path: it imports nothing of qfnb
GUARD = Path(__file__).with_name("mcp_stdio_guard.py")


@dataclass(frozen=True)
class McpLimits:
    """What one server's calls may take: ``call_timeout`` seconds (None: no deadline) and
    ``max_result_bytes`` of result text (longer is cut, and the result says so)."""

    call_timeout: float | None = 120.0
    max_result_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.call_timeout is not None and not self.call_timeout > 0:
            raise ValueError(f"call_timeout must be a positive number of seconds or None, not {self.call_timeout!r}")
        if self.max_result_bytes < 1024:
            raise ValueError(f"max_result_bytes must be at least 1024, not {self.max_result_bytes!r}")


#: the limits of servers opened without their own (:func:`configure` changes them)
DEFAULT_LIMITS = McpLimits()


def configure(**limits: Any) -> McpLimits:
    """Change the default limits of every server opened from now on (``call_timeout=``,
    ``max_result_bytes=``); returns them."""
    global DEFAULT_LIMITS
    unknown = set(limits) - {f.name for f in dataclasses.fields(McpLimits)}
    if unknown:
        raise TypeError(f"configure() takes call_timeout and max_result_bytes, not {', '.join(sorted(unknown))}")
    DEFAULT_LIMITS = dataclasses.replace(DEFAULT_LIMITS, **limits)
    return DEFAULT_LIMITS


class McpError(RuntimeError):
    """An MCP server that cannot be reached, or a tool call it answered as an error."""


class McpTimeout(McpError, TimeoutError):
    """A tool call past its ``call_timeout`` (abandoned; the connection stays usable)."""


def server_of(target: str, env: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
              max_line_bytes: int | None = None) -> str | mcp.StdioServerParameters | Transport:
    """What ``mcp.Client`` connects to: a URL as it is (with ``headers``, a transport sending them: a
    key as ``Authorization: Bearer``), a command line as stdio parameters (on POSIX behind
    :data:`GUARD`, which relays lines up to ``max_line_bytes``)."""
    target = target.strip()
    if not target:
        raise ValueError("an MCP server is a URL (http://host/mcp) or a command line; got nothing")
    if target.startswith(("http://", "https://")):
        if headers:
            return streamable_http_client(target, http_client=create_mcp_http_client(headers=dict(headers)))
        return target
    argv = shlex.split(target)
    if os.name == "posix" and max_line_bytes is not None:
        argv = [sys.executable, "-I", str(GUARD), str(os.getpid()), str(max_line_bytes), "--", *argv]
    return mcp.StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env) if env else None)


def result_text(result: mcp_types.CallToolResult) -> str:
    """A tool result as the model reads it: its structured content as JSON when it has one (a
    bare ``{"result": value}`` as the value), else its text blocks; other blocks named by type."""
    data = result.structured_content
    if data is not None:
        if isinstance(data, dict) and list(data) == ["result"]:
            data = data["result"]
        return as_text(data)
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')} omitted]")
    return "\n".join(parts)


def capped(text: str, max_bytes: int, was: int | None = None) -> str:
    """``text`` cut to ``max_bytes`` of UTF-8, with a note saying so when it was longer (or when
    ``was``, the bytes it had before the stdio guard cut it, is given)."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes and was is None:
        return text
    return (data[:max_bytes].decode("utf-8", errors="ignore")
            + f"\n[truncated by qfnb: {was or len(data):,} bytes, more than the cap of {max_bytes:,} "
              "(max_result_bytes)]")


@dataclass
class McpToolbox:
    """One MCP server's tools, connected. :meth:`open` connects; :meth:`close` (or ``with``) ends
    the connection (and a stdio server's process group)."""

    target: str
    tools: list[FunctionTool] = field(default_factory=list)
    limits: McpLimits = field(default_factory=lambda: DEFAULT_LIMITS)
    _client: mcp.Client | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, target: str, *, env: Mapping[str, str] | None = None, timeout: float = CONNECT_TIMEOUT,
             headers: Mapping[str, str] | None = None, call_timeout: float | EllipsisType | None = ...,
             max_result_bytes: int | None = None) -> McpToolbox:
        """Connect to ``target`` (a URL or a command line) and list its tools; raises
        :class:`McpError` naming the server when it cannot. ``headers`` go with each HTTP request
        (``qfnb mcp --http`` takes its key as ``{"Authorization": "Bearer <key>"}``); ``call_timeout``
        (seconds, None for none) and ``max_result_bytes`` override :data:`DEFAULT_LIMITS` for this server."""
        limits = DEFAULT_LIMITS
        if call_timeout is not ...:
            limits = dataclasses.replace(limits, call_timeout=call_timeout)
        if max_result_bytes is not None:
            limits = dataclasses.replace(limits, max_result_bytes=max_result_bytes)
        box = cls(target, limits=limits)
        # a line holds a result's text twice (content and structured content), JSON-escaped
        server = server_of(target, env, headers, max_line_bytes=4 * limits.max_result_bytes + 65536)
        ready: asyncio.Future[list[mcp_types.Tool]] | None = None

        async def start() -> list[mcp_types.Tool]:
            nonlocal ready
            ready = asyncio.get_running_loop().create_future()
            box._stop = asyncio.Event()
            box._task = asyncio.ensure_future(box._serve(server, ready))
            return await ready

        try:
            listed = sync.run(asyncio.wait_for(start(), timeout))
        except Exception as exc:
            box.close()
            raise McpError(f"MCP server {target!r}: cannot connect and list its tools: {_reason(exc)}") from exc
        box.tools = [box._tool(t) for t in listed]
        log.info("MCP server %s: %d tool(s): %s", target, len(box.tools), ", ".join(t.name for t in box.tools))
        return box

    async def _serve(self, server: str | mcp.StdioServerParameters | Transport,
                     ready: asyncio.Future[list[mcp_types.Tool]]) -> None:
        assert self._stop is not None
        try:
            async with mcp.Client(server) as client:
                listed = await client.list_tools()
                self._client = client
                ready.set_result(list(listed.tools))
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else McpError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            log.warning("MCP server %s: connection ended: %s", self.target, _reason(exc))
        finally:
            self._client = None

    def _tool(self, tool: mcp_types.Tool) -> FunctionTool:
        def invoke(arguments: dict[str, Any]) -> str:
            return self.call(tool.name, arguments)

        schema = dict(tool.input_schema) if tool.input_schema else {"type": "object", "properties": {}}
        return FunctionTool(tool.name, tool.description or tool.name.replace("_", " "), schema, invoke,
                            run_patterns=False)

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool ``name``; its result as text, cut to ``max_result_bytes``. An
        error result raises :class:`McpError`, a call past ``call_timeout`` :class:`McpTimeout`;
        Ctrl-C abandons the call and the next one works."""
        timeout = self.limits.call_timeout

        async def ask() -> mcp_types.CallToolResult:
            client = self._client
            if client is None or self._task is None or self._task.done():
                raise McpError(f"MCP server {self.target!r} is not connected")
            async with asyncio.timeout(timeout):
                return await client.call_tool(name, arguments)

        try:
            result = sync.run(ask())
        except TimeoutError:
            raise McpTimeout(
                f"MCP tool {name!r} on server {self.target!r} did not answer within {timeout:g} s (call_timeout); "
                "the call was abandoned. Set it per server with McpToolbox.open(..., call_timeout=) or "
                "%%qfchat --mcp-timeout, for every server with qfnb.agents.mcp_client.configure(call_timeout=)"
            ) from None
        truncated = (result.meta or {}).get("qfnb/truncated")
        was = truncated.get("bytes") if isinstance(truncated, dict) else None
        text = capped(result_text(result), self.limits.max_result_bytes, was if isinstance(was, int) else None)
        if result.is_error and truncated is None:
            raise McpError(text or f"{name} failed")
        return text

    def close(self) -> None:
        """End the connection (idempotent): a stdio server's process group is terminated, then
        killed if it does not exit."""
        if self._stop is None or self._task is None:
            return

        async def stop() -> None:
            assert self._stop is not None and self._task is not None
            self._stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except Exception:  # a server that will not stop in time (TimeoutError) is cancelled
                self._task.cancel()

        sync.run(stop())
        self._task = None

    def __enter__(self) -> McpToolbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    """The innermost message of ``exc`` (an anyio ExceptionGroup is unwrapped)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"

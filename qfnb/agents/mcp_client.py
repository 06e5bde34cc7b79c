"""Tools from any MCP server, with the official ``mcp`` package: a URL is a streamable-HTTP
server, anything else a command started over stdio. Each server tool becomes a
:class:`~qfnb.agents.tools.FunctionTool` (its JSON schema as the server gives it, so arguments are
checked strictly before they are sent), usable in :class:`~qfnb.agents.loop.ToolLoop`,
:func:`~qfnb.agents.run_tools` and ``%%qfchat --mcp`` with the same confirmation as any tool::

    with McpToolbox.open("uvx some-mcp-server --flag") as box:
        loop = run_tools("...", box.tools, model="...")

The connection lives on qfnb's background event loop (one task holds the client open, so the
``mcp`` client's task groups enter and exit in one task); the calls block the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp
import mcp_types
from mcp.client._transport import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from qfnb._core.runtime import sync
from qfnb.agents.tools import FunctionTool
from qfnb.agents.tools import result_text as as_text

__all__ = ["McpError", "McpToolbox", "result_text"]

log = logging.getLogger("qfnb.agents.mcp_client")

#: seconds to connect and list the tools
CONNECT_TIMEOUT = 60.0


class McpError(RuntimeError):
    """An MCP server that cannot be reached, or a tool call it answered as an error."""


def server_of(target: str, env: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
              ) -> str | mcp.StdioServerParameters | Transport:
    """What ``mcp.Client`` connects to: a URL as it is (with ``headers``, a transport sending them: a
    key as ``Authorization: Bearer``), a command line as stdio parameters."""
    target = target.strip()
    if not target:
        raise ValueError("an MCP server is a URL (http://host/mcp) or a command line; got nothing")
    if target.startswith(("http://", "https://")):
        if headers:
            return streamable_http_client(target, http_client=create_mcp_http_client(headers=dict(headers)))
        return target
    argv = shlex.split(target)
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


@dataclass
class McpToolbox:
    """One MCP server's tools, connected. :meth:`open` connects; :meth:`close` (or ``with``) ends
    the connection (and a stdio server's process)."""

    target: str
    tools: list[FunctionTool] = field(default_factory=list)
    _requests: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[Any]] | None] | None = None
    _task: Any = None

    @classmethod
    def open(cls, target: str, *, env: Mapping[str, str] | None = None, timeout: float = CONNECT_TIMEOUT,
             headers: Mapping[str, str] | None = None) -> McpToolbox:
        """Connect to ``target`` (a URL or a command line) and list its tools; raises
        :class:`McpError` naming the server when it cannot. ``headers`` go with each HTTP request
        (``qfnb mcp --http`` takes its key as ``{"Authorization": "Bearer <key>"}``)."""
        box = cls(target)
        server = server_of(target, env, headers)
        ready: asyncio.Future[list[mcp_types.Tool]] | None = None

        async def start() -> list[mcp_types.Tool]:
            nonlocal ready
            ready = asyncio.get_running_loop().create_future()
            box._requests = asyncio.Queue()
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
        assert self._requests is not None
        try:
            async with mcp.Client(server) as client:
                listed = await client.list_tools()
                ready.set_result(list(listed.tools))
                while (item := await self._requests.get()) is not None:
                    name, arguments, answer = item
                    try:
                        answer.set_result(await client.call_tool(name, arguments))
                    except Exception as exc:  # the caller's future carries it
                        answer.set_exception(exc)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else McpError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            log.warning("MCP server %s: connection ended: %s", self.target, _reason(exc))

    def _tool(self, tool: mcp_types.Tool) -> FunctionTool:
        def invoke(arguments: dict[str, Any]) -> str:
            return self.call(tool.name, arguments)

        schema = dict(tool.input_schema) if tool.input_schema else {"type": "object", "properties": {}}
        return FunctionTool(tool.name, tool.description or tool.name.replace("_", " "), schema, invoke)

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool ``name``; its result as text (an error result raises :class:`McpError`)."""
        async def ask() -> mcp_types.CallToolResult:
            if self._requests is None or self._task is None or self._task.done():
                raise McpError(f"MCP server {self.target!r} is not connected")
            answer: asyncio.Future[mcp_types.CallToolResult] = asyncio.get_running_loop().create_future()
            await self._requests.put((name, arguments, answer))
            return await answer

        result = sync.run(ask())
        text = result_text(result)
        if result.is_error:
            raise McpError(text or f"{name} failed")
        return text

    def close(self) -> None:
        """End the connection (idempotent)."""
        if self._requests is None or self._task is None:
            return

        async def stop() -> None:
            assert self._requests is not None
            await self._requests.put(None)
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

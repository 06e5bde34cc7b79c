"""MCP both ways with the official ``mcp`` package: ``qfnb mcp`` (stdio and streamable HTTP)
serving the platform's abilities, and :class:`qfnb.agents.mcp_client.McpToolbox` using them as
tools of the loop, with the same confirmation and strict argument checks as notebook tools. The
platform is the local platform's app with engine doubles (``local_platform``)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("mcp")

from qfnb.agents import FunctionTool, StepReply, ToolLoop, ToolRun
from qfnb.agents.mcp_client import McpError, McpToolbox
from qfnb.dataset import Dataset
from qfnb.evaluation import EvaluationManager, QianfanRuleEvaluator
from qfnb.model import Model
from tests.fakes.local_platform import ServedPlatform

SERVED = {"chat", "embeddings", "rerank", "dataset_info", "dataset_rows", "evaluation_info", "evaluation_results"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: the key ``qfnb mcp --http`` takes here (``$QFNB_MCP_KEY``)
KEY = "mcp-test-key-0123456789"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def mcp_http(local_platform: ServedPlatform, tmp_path: Any) -> Iterator[str]:
    """``qfnb mcp --http`` on a free loopback port, pointed at the platform; stopped after the test."""
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}, **local_platform.env(),
           "QFNB_MCP_KEY": KEY}
    log = open(tmp_path / "mcp.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "mcp", "--http", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, (tmp_path / "mcp.log").read_text()
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_qfnb_mcp_over_stdio_serves_the_platforms_abilities(local_platform: ServedPlatform) -> None:
    cfg = local_platform.config()
    ds = Dataset.create_from_pyobj([{"prompt": "x", "response": [["Tiny-Chat: x"]]}]).save(
        qianfan_dataset_create_args={"name": "mcp-set"}, config=cfg)
    store = local_platform.app.state.platform.store
    preset = next(m for m in store.all("models") if m.get("presetOf") == "Tiny-Chat")
    version = store.all("versions", lambda v: v["modelId"] == preset["id"])[0]
    em = EvaluationManager(qianfan_evaluators=[QianfanRuleEvaluator(using_accuracy=True)])
    em.eval([Model(version_id=version["id"], config=cfg)], ds, config=cfg)
    dataset_id = str(ds.qianfan_dataset_id)

    with McpToolbox.open(f"{sys.executable} -m qfnb.cli mcp", env=local_platform.env()) as box:
        assert {t.name for t in box.tools} == SERVED
        chat = next(t for t in box.tools if t.name == "chat")
        assert chat.description.startswith("Ask a chat model; returns its answer.")
        assert chat.parameters["required"] == ["prompt"]
        assert box.call("chat", {"prompt": "hello there", "model": "Tiny-Chat"}) == "tiny-chat: hello there"
        vectors = json.loads(box.call("embeddings", {"texts": ["ab", "abcd"], "model": "Tiny-Embed"}))["embeddings"]
        assert [v[0] for v in vectors] == [2.0, 4.0]
        ranked = json.loads(box.call("rerank", {"query": "cat", "documents": ["a cat", "stocks"]}))["results"]
        assert sorted(r["index"] for r in ranked) == [0, 1] and {r["document"] for r in ranked} == {"a cat", "stocks"}
        info = json.loads(box.call("dataset_info", {"dataset_id": dataset_id}))
        assert "mcp-set" in json.dumps(info)
        results = json.loads(box.call("evaluation_results", {"eval_id": str(em.task_id)}))
        assert "accuracy" in json.dumps(results).lower()
        with pytest.raises(McpError, match="ValueError: limit must be 1 to 100, not 1000"):
            box.call("dataset_rows", {"dataset_id": dataset_id, "limit": 1000})


class ScriptedStep:
    def __init__(self, replies: list[StepReply]) -> None:
        self.replies, self.sent = replies, []  # type: list[StepReply], list[list[dict[str, Any]]]

    def __call__(self, messages: list[dict[str, Any]], tools: Sequence[FunctionTool]) -> StepReply:
        self.sent.append(messages)
        return self.replies[min(len(self.sent), len(self.replies)) - 1]


def test_an_mcp_servers_tools_run_in_the_loop_over_http_with_confirmation(mcp_http: str) -> None:
    with McpToolbox.open(mcp_http, headers=BEARER) as box:
        tools = {t.name: t for t in box.tools}
        step = ScriptedStep([StepReply(calls=(("chat", '{"prompt": 5}', "a"),)),
                             StepReply(calls=(("chat", '{"prompt": "ping", "model": "Tiny-Chat"}', "b"),)),
                             StepReply(text="It said ping.")])
        asked: list[ToolRun] = []

        def confirm(call: ToolRun) -> Any:
            asked.append(call)
            return "wait"

        loop = ToolLoop(step, tools, [{"role": "user", "content": "Ask Tiny-Chat to say ping"}])
        loop.advance(confirm)
        assert loop.pending is asked[0] and not loop.done, "the MCP call waits for confirmation"
        loop.decide(run=True)
        loop.advance(confirm)
        loop.decide(run=True)
        loop.advance(confirm)
    assert [c.status for c in loop.calls] == ["failed", "ran"]
    assert loop.calls[0].result == "error: arguments refused: prompt: 5 is not of type 'string'"
    assert loop.calls[1].result == "tiny-chat: ping" and loop.answer == "It said ping."


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_qfnb_mcp_over_http_needs_its_key(mcp_http: str) -> None:
    """Any local process could otherwise chat with the user's credentials and read their datasets."""
    import httpx

    bare = httpx.post(mcp_http, json=INITIALIZE, headers=MCP_HEADERS)
    assert bare.status_code == 401 and "key" in bare.json()["error"]["message"]
    wrong = httpx.post(mcp_http, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    keyed = httpx.post(mcp_http, json=INITIALIZE, headers={**MCP_HEADERS, **BEARER})
    assert keyed.status_code == 200 and "serverInfo" in keyed.text
    with pytest.raises(McpError, match="cannot connect"):
        McpToolbox.open(mcp_http, timeout=20)


def test_qfnb_mcp_generates_its_key_once_into_the_data_dir(tmp_path: Any) -> None:
    from qfnb.common.cli import adapter_guard

    env = {"QFNB_DATA_DIR": str(tmp_path)}
    key, created = adapter_guard.adapter_secret("mcp", "QFNB_MCP_KEY", None, env)
    assert created == tmp_path / "adapters" / "mcp.key" and (created.stat().st_mode & 0o777) == 0o600
    assert adapter_guard.adapter_secret("mcp", "QFNB_MCP_KEY", None, env) == (key, None)


def test_an_unreachable_server_is_refused_naming_it() -> None:
    with pytest.raises(McpError, match=re.escape("MCP server 'http://127.0.0.1:9/mcp': cannot connect")):
        McpToolbox.open("http://127.0.0.1:9/mcp", timeout=10)
    with pytest.raises(ValueError, match=r"a URL \(http://host/mcp\) or a command line"):
        McpToolbox.open("  ")


def test_the_docs_mcp_2_server_example_runs_and_the_1x_import_names_the_new_path() -> None:
    """docs/agents.md's own server (mcp 2.x's ``MCPServer``) defines its tool; mcp 1.x's import fails
    with the message naming where ``FastMCP`` went, as the docs say."""
    import asyncio
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "agents.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "MCPServer" in b)
    namespace: dict[str, Any] = {"__name__": "adder"}
    exec(compile(block, "docs/agents.md", "exec"), namespace)
    tools = asyncio.run(namespace["server"].list_tools())
    assert [t.name for t in tools] == ["add"] and namespace["add"](2, 3) == 5
    with pytest.raises(ModuleNotFoundError, match=r"from mcp\.server\.mcpserver import MCPServer"):
        __import__("mcp.server.fastmcp")

"""A new user's afternoon: five questions about a course, over her own MCP server holding its
syllabus (``bench/syllabus_mcp.py``; the facts are made up, so the answers are only in the tool's
results), asked from ``%%qfchat --mcp``, pydantic-ai's ``Agent`` and openai-agents' ``Runner``, each with
the setup's default choice of model: ``%%qfchat`` with no ``-m``, the frameworks with the model name
``"default"`` (the platform picks the tool model for requests that offer tools, when it is installed).

    .venv/bin/python bench/syllabus_agents.py [--framework qfchat,pydantic-ai,openai-agents] [--model NAME]
        [--questions 1,2,3,4,5] [--together]

The frameworks reach the server through qfnb's MCP client (``qfnb.agents.mcp_client``), its tools
given to each as that framework's function tools (pydantic-ai's own MCP client needs ``fastmcp``,
which is not installed here). A question is *right* when the final answer holds its fact (any of
the listed spellings, case-insensitive); also printed: the tool calls that ran, the seconds per
question, the model the platform chose (``X-Qfnb-Model``) and its notice, and the load average.
Target: >= 4 of 5 right for each. The questions live here only, never in the test suite.
``--together`` asks the frameworks at once (``%%qfchat`` in the main thread, each framework in a
thread of its own, one MCP server and calls log each): the engine decodes their answers in one
batch, so on a loaded machine the run takes about as long as its slowest framework.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_average, log_to_stdout

log = logging.getLogger("bench.syllabus_agents")

SERVER = Path(__file__).with_name("syllabus_mcp.py")
SYSTEM = "You are a helpful assistant. Use the tools when they help."
#: (question, patterns any of which the right answer holds)
QUESTIONS = [
    ("When and where is the CS 241 midterm exam?", [r"B-?117"]),
    ("What share of the CS 241 grade do the labs count for?", [r"35\s*%", r"35 percent"]),
    ("Who holds the Wednesday office hours for CS 241?", [r"Varga"]),
    ("How many late days does each CS 241 student get for the whole term?", [r"\b6\b", r"\bsix\b"]),
    ("Which textbook chapter is the week 5 reading in CS 241?", [r"\b9\b", r"write-ahead"]),
]


@dataclass
class Run:
    question: str
    patterns: list[str]
    output: str = ""
    error: str = ""
    calls: int = 0
    seconds: float = 0.0
    queries: list[str] = field(default_factory=list)
    load: float = 0.0

    @property
    def right(self) -> bool:
        return not self.error and any(re.search(p, self.output, re.IGNORECASE) for p in self.patterns)


def server_command(calls_log: Path) -> str:
    return f"{sys.executable} {SERVER} --log {calls_log}"


def framework_tools(box: Any) -> list[Any]:
    """The MCP server's tools (qfnb FunctionTools), each run off the event loop."""
    return list(box.tools)


async def pydantic_ai_run(base_url: str, key: str, model: str, box: Any, run: Run) -> None:
    from pydantic_ai import Agent, Tool
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    def as_tool(tool: Any) -> Tool[Any]:
        async def call(**arguments: Any) -> str:
            return await asyncio.to_thread(tool.call, json.dumps(arguments))

        return Tool.from_schema(call, name=tool.name, description=tool.description, json_schema=tool.parameters)

    agent = Agent(OpenAIChatModel(model, provider=OpenAIProvider(base_url=base_url, api_key=key)),
                  system_prompt=SYSTEM, tools=[as_tool(t) for t in framework_tools(box)])
    result = await agent.run(run.question)
    run.output = str(result.output)


async def openai_agents_run(base_url: str, key: str, model: str, box: Any, run: Run) -> None:
    from agents import Agent, FunctionTool, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    from openai import AsyncOpenAI

    def as_tool(tool: Any) -> FunctionTool:
        async def invoke(_ctx: Any, arguments: str) -> str:
            return await asyncio.to_thread(tool.call, arguments or "{}")

        return FunctionTool(name=tool.name, description=tool.description, params_json_schema=tool.parameters,
                            on_invoke_tool=invoke, strict_json_schema=False)

    set_tracing_disabled(True)
    agent = Agent(name="Assistant", instructions=SYSTEM, tools=[as_tool(t) for t in framework_tools(box)],
                  model=OpenAIChatCompletionsModel(model=model, openai_client=AsyncOpenAI(base_url=base_url,
                                                                                        api_key=key)))
    result = await Runner.run(agent, run.question)
    run.output = str(result.final_output)


FRAMEWORKS: dict[str, Callable[[str, str, str, Any, Run], Awaitable[None]]] = {
    "pydantic-ai": pydantic_ai_run, "openai-agents": openai_agents_run}


def measure_framework(framework: str, base_url: str, key: str, model: str, calls_log: Path,
                      questions: list[tuple[str, list[str]]]) -> list[Run]:
    from qfnb.agents.mcp_client import McpToolbox

    done = []
    with McpToolbox.open(server_command(calls_log)) as box:
        for question, patterns in questions:
            run = Run(question, patterns)
            before = _calls(calls_log)
            start = time.perf_counter()
            try:
                asyncio.run(FRAMEWORKS[framework](base_url, key, model, box, run))
            except Exception as exc:  # the framework's own refusal (step limit, bad output) is the measurement
                run.error = f"{type(exc).__name__}: {str(exc)[:160]}"
            _ended(run, start, calls_log, before)
            _log_run(framework, run)
            done.append(run)
    return done


def measure_qfchat(model: str | None, calls_log: Path, questions: list[tuple[str, list[str]]]) -> list[Run]:
    """``%%qfchat --mcp`` in an IPython shell of this process, on the bench's data dir."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.display_pub.publish = lambda *args, **kwargs: None  # the cell's live view: the footer is logged instead
    shell.extension_manager.load_extension("qfnb")
    target = server_command(calls_log)
    flags = f'--mcp "{target}" --yes --fresh -o ans' + (f" -m {model}" if model else "")
    done = []
    for question, patterns in questions:
        run = Run(question, patterns)
        before = _calls(calls_log)
        start = time.perf_counter()
        try:
            shell.run_cell_magic("qfchat", flags, question)
            answer = shell.user_ns["ans"]
            run.output = answer.text
            run.error = "" if answer.error is None else str(answer.error)[:160]
            log.info("    footer: %s", answer.footer)
        except Exception as exc:
            run.error = f"{type(exc).__name__}: {str(exc)[:160]}"
        _ended(run, start, calls_log, before)
        _log_run("qfchat", run)
        done.append(run)
    return done


def _queries(calls_log: Path) -> list[str]:
    return calls_log.read_text(encoding="utf-8").splitlines() if calls_log.exists() else []


def _calls(calls_log: Path) -> int:
    return len(_queries(calls_log))


def _ended(run: Run, start: float, calls_log: Path, before: int) -> None:
    run.seconds = time.perf_counter() - start
    run.queries = _queries(calls_log)[before:]
    run.calls = len(run.queries)
    run.load = os.getloadavg()[0]


def _log_run(framework: str, run: Run) -> None:
    log.info("  %s: %s %s, %d tool call(s) %s, %.1f s, load %.1f: %s", framework, run.question,
             "RIGHT" if run.right else "wrong", run.calls, run.queries, run.seconds, run.load,
             (run.error or run.output).replace("\n", " ")[:200])


def warm_up(client: Any, model: str) -> None:
    """One request with a tool and the bench's model name: the model the platform chose, its notice,
    and its load time (kept out of the per-question times)."""
    tool = {"type": "function", "function": {"name": "search_syllabus", "description": "Search the syllabus",
                                             "parameters": {"type": "object", "properties": {
                                                 "query": {"type": "string"}}, "required": ["query"]}}}
    start = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model=model, tools=[tool], max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    log.info("warm-up: model %r served by %s in %.1f s; notice: %s", model, raw.headers.get("X-Qfnb-Model"),
             time.perf_counter() - start, raw.headers.get("X-Qfnb-Notice"))


def together(frameworks: list[str], measure: Callable[[str], list[Run]]) -> list[tuple[str, list[Run]]]:
    """Each framework's runs, the frameworks asked at once: ``%%qfchat`` in this (the main) thread,
    the others in threads of their own."""
    done: dict[str, list[Run]] = {}

    def run_one(framework: str) -> None:
        done[framework] = measure(framework)

    threads = [threading.Thread(target=run_one, args=(f,), name=f, daemon=True) for f in frameworks if f != "qfchat"]
    for thread in threads:
        thread.start()
    if "qfchat" in frameworks:
        run_one("qfchat")
    for thread in threads:
        thread.join()
    return [(f, done.get(f, [])) for f in frameworks]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--framework", default="qfchat,pydantic-ai,openai-agents")
    ap.add_argument("--questions", default="1,2,3,4,5", help="which of the five questions (1-based)")
    ap.add_argument("--model", default="default", help="the frameworks' model name (and -m for qfchat unless "
                                                       "'default')")
    ap.add_argument("--together", action="store_true", help="ask the frameworks at once (see the module's doc)")
    args = ap.parse_args()
    log_to_stdout()
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import qfnb
    from qfnb._core.backend import daemon

    questions = [QUESTIONS[int(n) - 1] for n in args.questions.split(",")]
    log.info("load average at start: %s", load_average())
    summary = []
    with tempfile.TemporaryDirectory(prefix="qfnb-syllabus-bench-") as tmp:
        data = Path(tmp) / "data"
        os.environ["QFNB_DATA_DIR"] = str(data)
        try:
            client: Any = qfnb.openai_client(data_dir=data, timeout=1800)
            base_url, key = str(client.base_url).rstrip("/"), client.api_key
            warm_up(client, args.model)

            def measure(framework: str) -> list[Run]:
                calls_log = Path(tmp) / f"calls-{framework}.log"
                if framework == "qfchat":
                    return measure_qfchat(None if args.model == "default" else args.model, calls_log, questions)
                return measure_framework(framework, base_url, key, args.model, calls_log, questions)

            summary = together(args.framework.split(","), measure) if args.together else [
                (framework, measure(framework)) for framework in args.framework.split(",")]
        finally:
            daemon.stop_daemon(data, force=True, timeout=30)
    log.info("model %r, question(s) %s%s:", args.model, args.questions,
             " (frameworks together)" if args.together else "")
    for framework, runs in summary:
        log.info("  %-14s right %d/%d (target >= 4 of 5); tool calls per question %s; %.1f s per question",
                 framework, sum(r.right for r in runs), len(runs), [r.calls for r in runs],
                 sum(r.seconds for r in runs) / max(1, len(runs)))
        for number, run in zip(args.questions.split(","), runs, strict=True):
            log.info("    | %-13s | Q%s | %-5s | %d call(s) | %6.0f s | load %4.1f |", framework, number,
                     "right" if run.right else "wrong", run.calls, run.seconds, run.load)
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    main()

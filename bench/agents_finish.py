"""Do agents finish? pydantic-ai's ``Agent`` and openai-agents' ``Runner``, unmodified and set up as
their docs show them for an OpenAI-compatible server, against ``qfnb serve`` started here.

    .venv/bin/python bench/agents_finish.py [--runs 5] [--model NAME [--gguf PATH]]
        [--framework pydantic-ai,openai-agents]

Each run asks about the weather in one city; the one tool answers a temperature drawn for that
run (a figure the model cannot know). A run *finishes* when the framework returns a final text
answer within its own step limit, and *uses the result* when the tool ran and that answer holds
the drawn figure.
Target: >= 4 of 5 runs finish and use the result, for each framework. Also printed: the model
calls per run (the tool called again after its result is the failure this measures) and the
wall time. Say the load average you ran it at (printed at the start and the end).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_average, log_to_stdout

log = logging.getLogger("bench.agents_finish")

CITIES = ["Paris", "Oslo", "Lagos", "Kyoto", "Lima", "Cairo", "Perth", "Quito"]
SYSTEM = "You are a helpful assistant. Use the tools when they help."


@dataclass
class Run:
    city: str
    figure: int
    output: str = ""
    error: str = ""
    calls: int = 0  # tool executions
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return not self.error and bool(self.output.strip())

    @property
    def used_result(self) -> bool:
        return self.finished and self.calls > 0 and str(self.figure) in self.output


def _weather(run: Run) -> Callable[[str], str]:
    def get_weather(city: str) -> str:
        """Get the current weather in a city.

        Args:
            city: The city's name.
        """
        run.calls += 1
        return f"{run.figure} °C and light rain in {city}"

    return get_weather


async def pydantic_ai_run(base_url: str, key: str, model: str, run: Run) -> None:
    # as pydantic-ai's docs show an OpenAI-compatible provider (Ollama, LM Studio...)
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    agent = Agent(OpenAIChatModel(model, provider=OpenAIProvider(base_url=base_url, api_key=key)),
                  system_prompt=SYSTEM)
    agent.tool_plain(_weather(run))
    result = await agent.run(f"What is the weather like in {run.city} right now?")
    run.output = str(result.output)


async def openai_agents_run(base_url: str, key: str, model: str, run: Run) -> None:
    # as openai-agents' docs show other providers: chat completions and a client of our own
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key=key)
    agent = Agent(name="Assistant", instructions=SYSTEM, tools=[function_tool(_weather(run))],
                  model=OpenAIChatCompletionsModel(model=model, openai_client=client))
    result = await Runner.run(agent, f"What is the weather like in {run.city} right now?")
    run.output = str(result.final_output)


FRAMEWORKS: dict[str, Callable[[str, str, str, Run], Awaitable[None]]] = {
    "pydantic-ai": pydantic_ai_run, "openai-agents": openai_agents_run}


def measure(framework: str, base_url: str, key: str, model: str, runs: int, seed: int) -> list[Run]:
    rng = random.Random(seed)
    done = []
    for i in range(runs):
        run = Run(CITIES[i % len(CITIES)], rng.randint(31, 89))
        start = time.perf_counter()
        try:
            asyncio.run(FRAMEWORKS[framework](base_url, key, model, run))
        except Exception as exc:  # the framework's own refusal (step limit, bad output) is the measurement
            run.error = f"{type(exc).__name__}: {str(exc)[:160]}"
        run.seconds = time.perf_counter() - start
        log.info("  %s run %d %s (%d°): %s, %d tool call(s), %.1f s: %s", framework, i + 1, run.city, run.figure,
                 "uses the result" if run.used_result else ("finished" if run.finished else "did not finish"),
                 run.calls, run.seconds, (run.error or run.output).replace("\n", " ")[:160])
        done.append(run)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="Qwen2.5-Coder-0.5B-Instruct")
    ap.add_argument("--framework", default="pydantic-ai,openai-agents")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--gguf", help="a GGUF file to add to the platform as --model before it starts")
    ap.add_argument("--template", help="with --gguf: a chat template file to use instead of the GGUF's own")
    args = ap.parse_args()
    log_to_stdout()
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # each run's closed loop: its clients' late cleanup
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench stops its daemon too
    import qfnb
    from qfnb._core.backend import daemon

    log.info("load average at start: %s", load_average())
    with tempfile.TemporaryDirectory(prefix="qfnb-agents-bench-") as tmp:
        data = Path(tmp) / "data"
        if args.gguf:
            subprocess.run([sys.executable, "-m", "qfnb.cli", "models", "add", args.gguf, "--name", args.model,
                            "--data-dir", str(data), *(["--template", args.template] if args.template else [])],
                           check=True)
        try:
            client: Any = qfnb.openai_client(data_dir=data)
            base_url, key = str(client.base_url).rstrip("/"), client.api_key
            summary = []
            for framework in args.framework.split(","):
                runs = measure(framework, base_url, key, args.model, args.runs, args.seed)
                summary.append((framework, runs))
        finally:
            daemon.stop_daemon(data, force=True, timeout=30)
    log.info("model %s, %d run(s) each:", args.model, args.runs)
    for framework, runs in summary:
        log.info("  %-14s finished %d/%d, used the tool's result %d/%d (target >= 4/5); tool calls per run %s; "
                 "%.1f s per run", framework, sum(r.finished for r in runs), len(runs),
                 sum(r.used_result for r in runs), len(runs), [r.calls for r in runs],
                 sum(r.seconds for r in runs) / max(1, len(runs)))
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    main()

"""Agents: tools a model may call and the loop that runs them, for any front end.

Lives here: tool schemas from type hints and docstrings with strict argument checks
(:mod:`~qfnb.agents.tools`), the tool loop with its step cap and confirmation callback
(:mod:`~qfnb.agents.loop`), qfnb's own chat as the loop's model call (:mod:`~qfnb.agents.chat`),
and MCP both ways (:mod:`~qfnb.agents.mcp_client`, :mod:`~qfnb.agents.mcp_server`; they need the
``mcp`` extra). Imports the SDK layers below it; the notebook imports it, never the reverse::

    from qfnb.agents import run_tools

    def get_weather(city: str) -> str:
        "The current weather in a city."
        return "17 °C, light rain"

    loop = run_tools("What's the weather in Paris?", [get_weather], model="ERNIE-Speed-8K")
    loop.answer
"""

from qfnb.agents.chat import chat_step, run_tools
from qfnb.agents.loop import (
    FINAL_ASK,
    Confirm,
    Decision,
    Step,
    StepReply,
    ToolLoop,
    ToolRecord,
    ToolRun,
    closing_messages,
    run_every_call,
)
from qfnb.agents.replay import CachedToolResults
from qfnb.agents.tools import ArgumentsError, FunctionTool, ToolDescriptionError, parse_arguments, result_text

__all__ = ["FINAL_ASK", "ArgumentsError", "CachedToolResults", "Confirm", "Decision", "FunctionTool", "Step",
           "StepReply", "ToolDescriptionError", "ToolLoop", "ToolRecord", "ToolRun", "chat_step", "closing_messages",
           "parse_arguments", "result_text", "run_every_call", "run_tools"]

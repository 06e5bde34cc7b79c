"""Which model answers an OpenAI chat or Responses request that offers tools, and what the answer says
about that choice.

A request *names no model* when its ``model`` is absent, empty or ``"default"``
(:data:`~qfnb.protocol.console.model_names.PLATFORM_CHOICE`, for clients that must send a name: pydantic-ai's
and openai-agents' model classes). It is answered by the tool model
(:data:`~qfnb.protocol.console.model_names.LOCAL_TOOL_MODEL`) when it offers tools (``tool_choice`` other than
``"none"``) and the tool model is served, else by the default chat model. Any other name is that model,
the default chat model's own name included. The answer names the model that served it
(``X-Qfnb-Model``); :data:`~qfnb.protocol.platform.daemon.NOTICE_HEADER` says why the tool model answered, or
that the model tool calls went to calls tools unreliably (the flags:
:data:`~qfnb.protocol.console.model_names.TOOL_CALLING`), logged once per model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qfnb.local.domain.platform import Platform
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL, PLATFORM_CHOICE, unreliable_tools_note
from qfnb.protocol.platform.daemon import NOTICE_HEADER

__all__ = ["ModelChoice", "choose", "offers_tools"]

log = logging.getLogger("qfnb.local.server.serving.model_choice")

#: the models whose unreliable tool calls were logged already (once per model and process)
_warned: set[str] = set()


def offers_tools(body: Mapping[str, Any]) -> bool:
    """Whether a request offers the model tools to call (a non-empty ``tools``, not ``tool_choice: none``)."""
    return bool(body.get("tools")) and body.get("tool_choice") != "none"


def names_no_model(body: Mapping[str, Any]) -> bool:
    model = body.get("model")
    return model is None or (isinstance(model, str) and model.strip().lower() in ("", PLATFORM_CHOICE))


def tool_model_served(platform: Platform) -> bool:
    return any(m.name == LOCAL_TOOL_MODEL for m in platform.served("chat"))


@dataclass(frozen=True)
class ModelChoice:
    """A request body with its model filled in where it named none, and what to say about it."""

    body: dict[str, Any]
    tools: bool  # the request offers tools
    picked: bool  # the platform chose the model (the request named none)
    tool_model_served: bool

    def headers(self, served: str) -> dict[str, str]:
        """The answer's :data:`NOTICE_HEADER` when the choice of ``served`` needs a word, else nothing."""
        if not self.tools:
            return {}
        notice = unreliable_tools_note(served, tool_model_served=self.tool_model_served)
        if notice is not None and served not in _warned:
            _warned.add(served)
            log.warning("%s", notice)
        if self.picked and served == LOCAL_TOOL_MODEL:
            notice = (f"no model named: the tool model {LOCAL_TOOL_MODEL} answers requests that offer tools "
                      "(name a model to choose another)")
        return {NOTICE_HEADER: notice} if notice is not None else {}


def choose(platform: Platform, body: Mapping[str, Any]) -> ModelChoice:
    """``body`` with the model that answers it when it names none (see the module's doc)."""
    tools = offers_tools(body)
    served = tools and tool_model_served(platform)
    if not names_no_model(body):
        return ModelChoice(dict(body), tools=tools, picked=False, tool_model_served=served)
    model = LOCAL_TOOL_MODEL if tools and served else LOCAL_CHAT_MODEL
    return ModelChoice({**body, "model": model}, tools=tools, picked=True, tool_model_served=served)

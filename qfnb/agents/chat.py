"""qfnb's own chat as the tool loop's model call: the v2 chat route (``tools`` / ``tool_calls``,
OpenAI's shape), on the cloud or the local platform as the configuration says.

With no ``model`` on the local platform, the loop asks the tool model
(:data:`~qfnb.protocol.console.model_names.LOCAL_TOOL_MODEL`) when the platform publishes it (its runtime
file's ``default_models``, key :data:`~qfnb.protocol.console.model_names.TOOLS_DEFAULT_KEY`), else the
default chat model; :attr:`ChatStep.notice` (and ``ToolLoop.notice``) says which, or that the model
asked calls tools unreliably (logged once per model). On the cloud, no model is its v2 default."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfnb.agents.loop import Confirm, Step, StepReply, ToolLoop, run_every_call
from qfnb.agents.tools import FunctionTool
from qfnb.protocol.console.model_names import TOOLS_DEFAULT_KEY, unreliable_tools_note
from qfnb.resources.inference.chat import ChatCompletion

__all__ = ["ChatStep", "chat_step", "choose_model", "reply_of", "run_tools"]

log = logging.getLogger("qfnb.agents.chat")
#: the models whose unreliable tool calls were logged already (once per model and process)
_warned: set[str] = set()


def reply_of(body: Any) -> StepReply:
    """The :class:`StepReply` of an OpenAI-shaped chat answer body (``choices[0].message``, ``usage``)."""
    body = body if isinstance(body, dict) else {}
    choices = body.get("choices") or [{}]
    message = (choices[0] or {}).get("message") or {}
    calls = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        args = fn.get("arguments")
        calls.append((str(fn.get("name", "")), args if isinstance(args, str) else json.dumps(args or {}),
                      str(call.get("id") or "")))
    return StepReply(text=str(message.get("content") or ""), calls=tuple(calls), usage=body.get("usage"))


def choose_model(model: str | None, *, embedded: bool,
                 default_models: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The model a tool loop asks, and what to tell the user about it (None: nothing). ``embedded``:
    the local platform answers; ``default_models``: what it publishes (see the module's doc)."""
    if not embedded:
        return model, None
    tool_model = default_models.get(TOOLS_DEFAULT_KEY)
    if model is None and tool_model:
        return tool_model, f"no model named: the tool model {tool_model} answers (model=NAME picks another)"
    asked = model or default_models.get("chat")
    note = unreliable_tools_note(asked, tool_model_served=bool(tool_model), how="model={model!r}") if asked else None
    return model, note


@dataclass
class ChatStep:
    """A step that asks ``model`` through qfnb's v2 chat, the tools as OpenAI ``tools`` (see
    :func:`chat_step`); the model is chosen at the first call (:func:`choose_model`)."""

    model: str | None
    sampling: Mapping[str, Any] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    notice: str | None = None
    _chosen: bool = False

    def __post_init__(self) -> None:
        self.resource = ChatCompletion(version=2, **self.settings)

    def choose(self) -> None:
        """Pick the model once (reads the configuration: finds or starts the local platform)."""
        if self._chosen:
            return
        self._chosen = True
        cfg = self.resource.config
        self.model, self.notice = choose_model(self.model, embedded=cfg.embedded, default_models=cfg.default_models)
        if self.notice is not None and "unreliably" in self.notice and self.notice not in _warned:
            _warned.add(self.notice)
            log.warning("%s", self.notice)

    def __call__(self, messages: list[dict[str, Any]], tools: Sequence[FunctionTool]) -> StepReply:
        fields: dict[str, Any] = dict(self.sampling or {})
        if tools:
            fields["tools"] = [t.openai_tool() for t in tools]
        try:
            self.choose()
            resp = self.resource.do(model=self.model, messages=messages, **fields)
        except Exception as exc:  # the loop ends with it; the caller reads loop.reply.error
            return StepReply(error=exc)
        return reply_of(resp.body)


def chat_step(model: str | None = None, sampling: Mapping[str, Any] | None = None, **settings: Any) -> ChatStep:
    """A step that asks ``model`` through qfnb's v2 chat, the tools as OpenAI ``tools``;
    ``sampling`` goes with each request (``temperature``, ``max_output_tokens``...) and
    ``settings`` to :class:`~qfnb.ChatCompletion` (credentials, ``config``...). With no
    ``model`` on the local platform: the tool model when it is served (see the module's doc)."""
    return ChatStep(model, sampling, settings)


def run_tools(prompt: str | list[dict[str, Any]], tools: Iterable[Callable[..., Any] | FunctionTool], *,
              model: str | None = None, confirm: Confirm = run_every_call, max_steps: int = 6,
              sampling: Mapping[str, Any] | None = None, step: Step | None = None, **settings: Any) -> ToolLoop:
    """Ask ``prompt`` with ``tools`` (Python functions or :class:`FunctionTool`s, MCP tools
    included) until the model answers or ``max_steps`` model calls; ``confirm`` decides each call
    (default: run it); ``sampling`` goes with each request. With no ``model`` on the local platform,
    the tool model answers when it is installed. The loop is returned: ``.answer``, ``.calls``,
    ``.usage``, ``.stopped``, ``.notice`` (the model choice's word, if any)."""
    offered = [t if isinstance(t, FunctionTool) else FunctionTool.from_function(t) for t in tools]
    by_name = {t.name: t for t in offered}
    if len(by_name) != len(offered):
        raise ValueError("two tools have the same name: " + ", ".join(t.name for t in offered))
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    own: ChatStep | None = None
    if step is None:
        step = own = chat_step(model, sampling, **settings)
    loop = ToolLoop(step, by_name, messages, max_steps=max_steps)
    loop.advance(confirm)
    if own is not None:
        loop.notice = own.notice
    return loop

"""An external OpenAI-compatible engine (vLLM, Ollama, another llama.cpp server), passed through:
the platform's request as OpenAI's fields on its endpoints, streamed (closing the iterator cancels
the generation), behind the gate; the engine renders, tokenizes and decodes (the link: :mod:`.transport`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from qfnb.local.engines.ask import Ask, ChatAsk, GenParams, TextAsk
from qfnb.local.engines.base import CannotServe, Delta, refuse_tool_turns, render_gemma, text_turns
from qfnb.local.engines.gate import Gate
from qfnb.local.engines.llama import prompts, watchdog
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint

__all__ = ["ExternalEngine"]


class ExternalEngine:
    """An :class:`~qfnb.local.engines.api.Engine` over an external OpenAI-compatible engine at
    ``endpoint``, whose model is ``model`` there. ``template="gemma"`` renders the Gemma turn format
    here and uses ``/completions``; otherwise the engine applies the model's own template."""

    def __init__(self, name: str, endpoint: Endpoint, *, gate: Gate, model: str | None = None,
                 template: str = "native", stop: tuple[str, ...] = ()) -> None:
        self.name, self.gate, self.endpoint = name, gate, endpoint
        self.model, self.template, self.stop = model or name, template, stop

    def generate(self, ask: Ask) -> AsyncIterator[Delta]:
        gp = ask.engine_params(self.stop)
        if isinstance(ask, ChatAsk) and not ask.plain:
            refuse_tool_turns(self.name, ask, has_template=self.can_call_tools)
            return self._run("/chat/completions", _chat_fields(ask), gp, ask.lane)
        if isinstance(ask, TextAsk) or self.template == "gemma":
            prompt = ask.prompt if isinstance(ask, TextAsk) else render_gemma(text_turns(ask.messages))
            return self._run("/completions", {"prompt": prompt}, gp, ask.lane)
        return self._run("/chat/completions", {"messages": text_turns(ask.messages), **_reasoning(ask)}, gp, ask.lane)

    @property
    def can_call_tools(self) -> bool:
        """Whether the model has its own chat template (the engine renders tools with it)."""
        return self.template != "gemma"

    def resume(self, ask: ChatAsk, text: str) -> AsyncIterator[Delta] | None:
        """None: another server's grammar is its own, so the rest of an answer cannot be written for it."""
        return None

    async def count_tokens(self, ask: Ask) -> int:
        """The engine's own count: its ``/tokenize`` with the turns (vLLM renders them with the
        model's template and answers ``count``); an engine that answers bare ``tokens`` instead
        (llama-server) renders them first (``/apply-template``). CannotServe where it has no such route."""
        source: str | list[dict[str, Any]] = ask.prompt if isinstance(ask, TextAsk) else text_turns(ask.messages)
        target = self.endpoint
        payload = {"model": self.model, ("prompt" if isinstance(source, str) else "messages"): source}
        try:
            resp = await transport.client().post(prompts.engine_root(target.base_url) + "/tokenize", json=payload,
                                                 headers=target.headers)
            resp.raise_for_status()
            answer = resp.json()
            if isinstance(answer.get("count"), int):
                return int(answer["count"])
            if isinstance(answer.get("tokens"), list):  # llama-server: the template first, then the text
                tokens, _ = await prompts.prepare(target.base_url, target.headers, source)
                return len(tokens)
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise CannotServe(f"{self.name} runs on an external engine whose /tokenize could not count the "
                              f"prompt ({type(exc).__name__}): the platform cannot count its tokens") from exc
        raise CannotServe(f"{self.name} runs on an external engine whose /tokenize gives no count: the platform "
                          "cannot count its tokens")

    async def token_logprobs(self, tokens: Sequence[int], positions: Sequence[int]) -> list[float]:
        raise self._unscored("tokens")

    async def answer_logprob(self, messages: Sequence[dict[str, str]], answer: str) -> tuple[float, int]:
        raise self._unscored("answers")

    def _unscored(self, what: str) -> CannotServe:
        return CannotServe(f"{self.name} runs on an external engine: the platform scores given {what} only on its "
                           "own llama-server")

    async def _run(self, path: str, payload: dict[str, Any], gp: GenParams, lane: str) -> AsyncIterator[Delta]:
        """``payload`` on the engine's ``path``, once the gate admits it."""
        body = {"model": self.model, **payload, **gp.openai_fields(), **(self.endpoint.extra or {})}
        if gp.repeat_penalty != 1.0:
            body["repetition_penalty"] = gp.repeat_penalty  # vLLM's name for penalty_score
        async with self.gate.turn(lane):
            async for delta in watchdog.guarded(self.name, self.endpoint, path, body):
                yield delta


def _reasoning(ask: ChatAsk) -> dict[str, Any]:
    """``reasoning_effort`` (an external engine's model may reason; ours do not)."""
    return {"reasoning_effort": ask.reasoning_effort} if ask.reasoning_effort else {}


def _chat_fields(ask: ChatAsk) -> dict[str, Any]:
    """A chat with tools, a schema, logprobs or penalties as OpenAI's fields (tool calls and results included)."""
    payload: dict[str, Any] = {"messages": [dict(m) for m in ask.messages], **ask.sampling.penalties(),
                               **_reasoning(ask)}
    if ask.tools:
        payload.update(tools=[dict(t) for t in ask.tools], tool_choice=ask.tool_choice)
    if ask.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = ask.parallel_tool_calls
    if ask.logprobs is not None:
        payload.update(logprobs=True, top_logprobs=ask.logprobs)
    if ask.schema is not None:
        payload["response_format"] = ({"type": "json_object"} if ask.schema_name is None else {
            "type": "json_schema", "json_schema": {"name": ask.schema_name, "schema": dict(ask.schema)}})
    return payload

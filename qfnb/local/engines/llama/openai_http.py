"""Chat over an OpenAI-compatible HTTP engine: our own ``llama-server`` or an external one
(vLLM, another llama.cpp server, Ollama).

The platform's request fields become the engine's (``max_output_tokens`` -> ``max_tokens``,
``penalty_score`` -> ``repeat_penalty``...), every call streams from the engine (also for a
non-streaming client, so closing the iterator cancels the generation at once), and the
engine's chunks become :class:`Delta` s. The HTTP link itself (pooled client, resends, the engine's
errors, its SSE chunks) is :mod:`.transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from qfnb.local.engines import progress
from qfnb.local.engines.ask import BATCH, Ask, ChatAsk, GenParams, TextAsk
from qfnb.local.engines.base import CannotServe, Delta, PromptTooLong, common_prefix, render_gemma, text_turns
from qfnb.local.engines.gate import Gate
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import answer_check, grammar, infill, prompts, tool_calls, transport, watchdog
from qfnb.local.engines.llama.server import EngineUnavailable, Lease, LlamaServer
from qfnb.local.engines.llama.transport import Endpoint, Watch

__all__ = ["Endpoint", "OpenAIChat", "llama_endpoint", "request_body"]

#: the logit bias that forces a token (:meth:`OpenAIChat.token_logprobs`): larger than any gap between
#: two raw logits, and not seen by the probability reported (it is taken before the sampler's bias)
FORCE_BIAS = 1e9
#: a log-probability below this is llama-server's stand-in for a probability of 0 (float32's lowest)
UNDERFLOW = -1e30


def request_body(gp: GenParams, *, llama: bool) -> dict[str, Any]:
    """Sampling fields in OpenAI terms (plus llama.cpp's own where the engine is llama.cpp)."""
    body: dict[str, Any] = {"temperature": 0.0 if gp.greedy else gp.temperature, "top_p": gp.top_p,
                            "max_tokens": gp.max_tokens, "stream": True,
                            "stream_options": {"include_usage": True}}
    if gp.stop:
        body["stop"] = list(gp.stop)
    if gp.seed is not None:
        body["seed"] = gp.seed
    if gp.top_k > 0:
        body["top_k"] = gp.top_k
    if llama:
        # a seeded answer reads its whole prompt afresh: logits computed over a reused prefix differ
        # in their rounding from those of a whole prompt, and a sampled answer drifts from there
        body.update(repeat_penalty=gp.repeat_penalty, min_p=0.0, cache_prompt=gp.seed is None)
    elif gp.repeat_penalty != 1.0:
        body["repetition_penalty"] = gp.repeat_penalty  # vLLM's name for penalty_score
    return body


class OpenAIChat:
    """An :class:`~qfnb.local.engines.api.Engine` over an OpenAI-compatible engine.

    ``endpoint`` is called (in a thread) for each request and says where to send it; with our
    own ``llama-server`` that starts the process if needed and picks the adapter.
    ``template="gemma"`` renders the Gemma turn format here and uses ``/completions`` (the base
    GGUF has no chat template); otherwise the engine applies the model's own template.
    """

    def __init__(self, name: str, endpoint: Callable[[], Endpoint], *, gate: Gate, model: str | None = None,
                 template: str = "native", stop: tuple[str, ...] = (), llama: bool = True,
                 n_ctx: int | None = None, chat_layer: str = "own",
                 solo: Callable[[], Endpoint] | None = None) -> None:
        self.name, self.gate, self._endpoint = name, gate, endpoint
        #: where a seeded request goes: the model's solo process, one request at a time (see .lanes)
        self._solo = solo
        self._model, self._template, self._stop, self._llama = model or name, template, stop, llama
        #: with our own llama-server and a context size: prompts are prepared here (:mod:`.prompts`)
        self._n_ctx = n_ctx if llama else None
        #: ``"server"``: a chat with tools, a schema or logprobs goes to our llama-server's own chat
        #: endpoint (:meth:`_served_chat`); ``"own"``: it is rendered and tokenized here
        self._chat_layer = chat_layer

    @property
    def _served_chats(self) -> bool:
        """Whether chats go to our own llama-server's chat endpoint (``QFNB_LLAMA_CHAT=server``; the
        Gemma base model has no template, so its turns are rendered here)."""
        return self._n_ctx is not None and self._chat_layer == "server" and self._template != "gemma"

    @property
    def can_call_tools(self) -> bool:
        """Whether the model has its own chat template (the engine renders tools with it); the
        Gemma base model has none."""
        return self._template != "gemma"

    def generate(self, ask: Ask) -> AsyncIterator[Delta]:
        gp = ask.engine_params(self._stop)
        if isinstance(ask, TextAsk):
            if self._n_ctx is not None:
                return self._run_prepared(ask.prompt, gp, ask.lane)
            return self._run("/completions", {"prompt": ask.prompt}, gp, ask.lane)
        if ask.plain:
            msgs = text_turns(ask.messages)
            if self._served_chats:
                return self._run_chat({"messages": msgs}, gp, ask.lane, key=ask.slot_key)
            if self._n_ctx is not None:
                return self._run_prepared(render_gemma(msgs) if self._template == "gemma" else msgs, gp, ask.lane,
                                          key=ask.slot_key)
            if self._template == "gemma":
                return self._run("/completions", {"prompt": render_gemma(msgs)}, gp, ask.lane)
            return self._run("/chat/completions", {"messages": msgs, **self._reasoning(ask)}, gp, ask.lane)
        return self._chat_fields(ask, gp)

    def infill(self, ask: infill.InfillAsk) -> AsyncIterator[Delta]:
        """Fill in the middle (code completion) on our own llama-server (:mod:`.infill`)."""
        if self._n_ctx is None or not isinstance(self.gate, LaneGate) or self._template == "gemma":
            raise CannotServe(f"{self.name} cannot fill in the middle: only a coder model on qfnb's own llama-server "
                              "can (such as Qwen2.5-Coder-0.5B-Instruct)")
        return infill.infill(self.name, self.gate, self._leased, ask)

    def _reasoning(self, ask: ChatAsk) -> dict[str, Any]:
        """``reasoning_effort`` for an external engine (its model may reason; ours do not)."""
        return {"reasoning_effort": ask.reasoning_effort} if ask.reasoning_effort and not self._llama else {}

    async def count_tokens(self, ask: Ask) -> int:
        """The prompt's tokens as :meth:`generate` sends them: rendered by the model's template (a
        chat, with its tools) and tokenized by the engine, as the answer's ``prompt_tokens`` counts."""
        if self._n_ctx is None:
            return await self._external_count(ask)
        tools: list[dict[str, Any]] | None = None
        source: str | list[dict[str, Any]]
        if isinstance(ask, TextAsk):
            source = ask.prompt
        else:  # a plain chat's text turns, else the turns as the model reads them, with the tools offered
            messages: list[dict[str, Any]] = text_turns(ask.messages) if ask.plain else [dict(m) for m in ask.messages]
            tools = None if ask.plain else [dict(t) for t in ask.offered_tools] or None
            source = (render_gemma(text_turns(messages)) if self._template == "gemma"
                      else self._read_turns(messages, tools, forced=bool(tools) and ask.tool_choice == "required"))
        async with self._leased() as target:
            try:
                tokens, _ = await self._prepare(target.base_url, target.headers, source, tools)
            except httpx.HTTPError as exc:
                raise EngineUnavailable(f"{self.name}: the engine at {target.base_url} could not count the prompt "
                                        f"({type(exc).__name__})") from exc
        return len(tokens)

    async def _external_count(self, ask: Ask) -> int:
        """An external engine's own count: its ``/tokenize`` with the turns (vLLM renders them with the
        model's template and answers ``count``); an engine that answers bare ``tokens`` instead
        (llama-server) renders them first (``/apply-template``). CannotServe where it has no such route."""
        source: str | list[dict[str, Any]] = ask.prompt if isinstance(ask, TextAsk) else text_turns(ask.messages)
        async with self._leased() as target:
            root, client = prompts.engine_root(target.base_url), transport.client()
            payload = {"model": self._model, ("prompt" if isinstance(source, str) else "messages"): source}
            try:
                resp = await client.post(root + "/tokenize", json=payload, headers=target.headers)
                resp.raise_for_status()
                answer = resp.json()
                if isinstance(answer.get("count"), int):
                    return int(answer["count"])
                if isinstance(answer.get("tokens"), list):  # llama-server: the template first, then the text
                    tokens, _ = await self._prepare(target.base_url, target.headers, source)
                    return len(tokens)
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                raise CannotServe(f"{self.name} runs on an external engine whose /tokenize could not count the "
                                  f"prompt ({type(exc).__name__}): the platform cannot count its tokens") from exc
        raise CannotServe(f"{self.name} runs on an external engine whose /tokenize gives no count: the platform "
                          "cannot count its tokens")

    async def token_logprobs(self, tokens: Sequence[int], positions: Sequence[int]) -> list[float]:
        """Each ``tokens[t]``'s log-probability after ``tokens[:t]`` (:meth:`.api.Engine.token_logprobs`)
        on our own llama-server, with this model's adapter: one ``/completion`` per position, its
        prompt ``tokens[:t]`` as token ids, its one new token forced to ``tokens[t]`` by a logit bias,
        and that token's probability from the raw logits (``n_probs`` with ``post_sampling_probs``
        off: a softmax over the whole vocabulary before any bias). The positions of a call run in
        order on one slot, in the batch lane, so each prompt re-reads only what the slot lacks."""
        if self._n_ctx is None:
            raise CannotServe(f"{self.name} runs on an external engine: the platform scores given tokens only on "
                              "its own llama-server")
        ids = [int(t) for t in tokens]
        if bad := [t for t in positions if not 0 < t < len(ids)]:
            raise ValueError(f"positions {bad[:3]} are outside 1..{len(ids) - 1}")
        if len(ids) > self._n_ctx:
            raise PromptTooLong(f"{len(ids)} tokens; {self.name} has a context of {self._n_ctx} tokens")
        assert isinstance(self.gate, LaneGate)
        out: list[float] = []
        async with self._leased() as target:
            url = prompts.engine_root(target.base_url) + "/completion"
            async with self.gate.turn(BATCH, long=len(ids) > prompts.LONG_PROMPT_TOKENS, group=target.group) as slot:
                for t in positions:
                    body = {"prompt": ids[:t], "n_predict": 1, "temperature": 0.0, "n_probs": 1,
                            "post_sampling_probs": False, "logit_bias": [[ids[t], FORCE_BIAS]], "cache_prompt": True,
                            "id_slot": slot, **(target.extra or {})}
                    reply = await transport.post_json(self.name, target, url, body)
                    out.append(_forced_logprob(self.name, reply, ids[t], t))
        return out

    async def answer_logprob(self, messages: Sequence[dict[str, str]], answer: str) -> tuple[float, int]:
        """:meth:`.api.Engine.answer_logprob` on our own llama-server: the turns rendered by the model's
        template, then each of the answer's tokens scored teacher-forced (:meth:`token_logprobs`)."""
        if self._n_ctx is None:
            raise CannotServe(f"{self.name} runs on an external engine: the platform scores given answers only on "
                              "its own llama-server")
        turns = text_turns(list(messages))
        async with self._leased() as target:
            client = transport.client()
            text = (render_gemma(turns) if self._template == "gemma"
                    else tool_calls.fix_rendered(await prompts.render_chat(client, target.base_url, target.headers,
                                                                           turns)))
            prompt = await prompts.tokenize(client, target.base_url, target.headers, text)
            full = await prompts.tokenize(client, target.base_url, target.headers, text + answer)
        start = max(1, common_prefix(prompt, full))
        if start >= len(full):
            return 0.0, 0
        return sum(await self.token_logprobs(full, range(start, len(full)))), len(full) - start

    def _chat_fields(self, ask: ChatAsk, gp: GenParams) -> AsyncIterator[Delta]:
        """A chat with tools, a schema, logprobs or penalties, over OpenAI turns (tool calls and
        results included).

        On our own engine the prompt is prepared here (rendered with the tools by the model's
        template, tokenized once), a JSON schema constrains decoding through the engine's grammar,
        tool calls are decided by :mod:`.tool_calls` and ``logprobs`` come with the generated
        tokens (a call's too); external engines get OpenAI's fields on their chat endpoint.
        """
        messages = [dict(m) for m in ask.messages]
        tools = [dict(t) for t in ask.offered_tools] or None
        if (tools or ask.has_tool_turns) and not self.can_call_tools:
            raise CannotServe(f"{self.name} is a base model without a chat template: it cannot call tools "
                              "or read tool turns; use an instruct model such as Qwen2.5-Coder-0.5B-Instruct")
        passthrough = ask.sampling.penalties()
        if self._n_ctx is None:
            return self._external(ask, messages, passthrough, gp)
        # a required call stays here: the server's own grammar for it (Qwen2.5's template) let the
        # 0.5B model write the call as bare JSON and go on to the token cap (bench/structured_output.py)
        required = bool(tools) and ask.tool_choice == "required"
        if self._served_chats and not required and not (tools and ask.schema is not None):
            return self._served_chat(ask, messages, tools, passthrough, gp)
        return self._own_chat(ask, messages, tools, passthrough, gp)

    def _own_chat(self, ask: ChatAsk, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                  passthrough: dict[str, Any], gp: GenParams) -> AsyncIterator[Delta]:
        """A chat rendered and tokenized here, sent as token ids to ``/completions``."""
        forced = bool(tools) and ask.tool_choice == "required"
        source: str | list[dict[str, Any]] = (render_gemma(text_turns(messages)) if self._template == "gemma"
                                              else self._read_turns(messages, tools, forced=forced))
        extra = {**passthrough, **({"json_schema": dict(ask.schema)} if ask.schema is not None else {})}
        top = ask.logprobs
        if top is not None:
            extra["logprobs"] = max(1, top)  # the engine's count of alternatives (0 would send none)
        names = [t["function"]["name"] for t in tools] if tools else None
        if forced and tools:
            extra["json_schema"] = tool_calls.call_schema(tools)

        def attempt(n: int) -> AsyncIterator[Delta]:
            return self._run_prepared(source, answer_check.resample_params(gp, n), ask.lane, extra, tools=tools,
                                      forced=forced, names=names, top_logprobs=top, key=ask.slot_key)

        schema = extra.get("json_schema")
        if schema is None or grammar.grammar_is_exact(schema):
            answer = attempt(0)
        elif forced and tools:  # the calls' arguments, each against its tool's whole schema
            params = {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"} for t in tools}
            answer = answer_check.checked(attempt, lambda deltas: answer_check.calls_miss(deltas, params))
        else:
            answer = answer_check.checked(attempt, lambda deltas: answer_check.text_miss(
                "".join(d.text for d in deltas), schema))
        after_result = tool_calls.follows_result(messages)
        if tools and names and not forced:
            answer = self._auto_calls_checked(answer, ask, source, gp, extra, tools, names, after_result=after_result)
        if names and not forced and after_result:  # a repeated call, or one written as text, is answered
            return tool_calls.answer_after_result(answer, messages, lambda closing: self._run_prepared(
                closing, gp, ask.lane, extra, top_logprobs=top, key=ask.slot_key))
        return answer

    def _served_chat(self, ask: ChatAsk, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                     passthrough: dict[str, Any], gp: GenParams) -> AsyncIterator[Delta]:
        """A chat (not a required call) on our own llama-server's ``/v1/chat/completions``: its
        template renders the turns and tools and its parser reads the calls it knows. What stays
        here: the token count (context and slot), the schema as :mod:`.grammar` writes it, the
        calls a small model writes as text (:func:`.tool_calls.as_tool_calls`), the answer's check
        against the whole schema, a strict tool's call under ``auto`` written again under its
        grammar (by :meth:`_run_prepared`, as a required call is), and a call repeated after its
        result answered from it."""
        fields: dict[str, Any] = {"messages": messages, **passthrough}
        if tools:
            fields.update(tools=tools, tool_choice=ask.tool_choice)
            if ask.parallel_tool_calls is not None:
                fields["parallel_tool_calls"] = ask.parallel_tool_calls
        top = ask.logprobs
        if top is not None:
            fields.update(logprobs=True, top_logprobs=max(1, top))
        names = [t["function"]["name"] for t in tools] if tools else None
        schema = dict(ask.schema) if ask.schema is not None else None

        def attempt(n: int) -> AsyncIterator[Delta]:
            return self._run_chat(fields, answer_check.resample_params(gp, n), ask.lane, names=names,
                                  top_logprobs=top, key=ask.slot_key)

        if schema is not None:
            fields.update(grammar.engine_fields(schema))
            answer = attempt(0) if grammar.grammar_is_exact(schema) else answer_check.checked(
                attempt, lambda deltas: answer_check.text_miss("".join(d.text for d in deltas), schema))
        else:
            answer = attempt(0)
        strict = tool_calls.strict_tools(tools)
        if strict and tools:  # an auto call of a strict tool that does not fit: again, under its grammar
            extra = {**passthrough, **({"logprobs": max(1, top)} if top is not None else {})}
            answer = tool_calls.enforce_strict(answer, strict, lambda name: self._run_prepared(
                messages, gp, ask.lane, {**extra, "json_schema": tool_calls.call_schema(
                    [t for t in tools if t["function"]["name"] == name])},
                tools=tools, forced=True, names=[name], top_logprobs=top, key=ask.slot_key))
        if names and tool_calls.follows_result(messages):  # a repeated call is answered from its result
            return tool_calls.answer_after_result(answer, messages, lambda closing: self._run_chat(
                {k: v for k, v in {**fields, "messages": closing}.items() if k not in ("tools", "tool_choice")},
                gp, ask.lane, top_logprobs=top))
        return answer

    async def _run_chat(self, fields: dict[str, Any], gp: GenParams, lane: str, *, names: list[str] | None = None,
                        top_logprobs: int | None = None, key: str | None = None) -> AsyncIterator[Delta]:
        """``fields`` (turns, tools...) on our llama-server's chat endpoint, on a slot chosen by the
        prompt's length: the prompt is counted first (rendered with the tools, tokenized), so one that
        does not fit is refused before any prefill and ``max_tokens`` trimmed to the room left."""
        assert self._n_ctx is not None and isinstance(self.gate, LaneGate)
        seeded = gp.seed is not None and self._solo is not None
        async with self._leased(seeded) as target:
            try:
                tokens, _ = await self._prepare(target.base_url, target.headers, fields["messages"],
                                                fields.get("tools"))
            except httpx.HTTPError as exc:
                if target.broken is not None:
                    target.broken()
                raise EngineUnavailable(f"{self.name}: the engine at {target.base_url} could not count the prompt "
                                        f"({type(exc).__name__})") from exc
            body = {"model": self._model, **fields, **request_body(gp, llama=True), **(target.extra or {})}
            prompts.fit(self.name, tokens, self._n_ctx, body)
            async with self.gate.turn(lane, long=len(tokens) > prompts.LONG_PROMPT_TOKENS, key=key,
                                      group=target.group, exclusive=seeded) as slot:
                body["id_slot"] = slot
                deltas = watchdog.guarded(self.name, target, "/chat/completions", body)
                if top_logprobs is not None:
                    deltas = _keep_top(deltas, top_logprobs)
                if names:  # the server's calls whole, then the calls it left as text (a small model's)
                    deltas = tool_calls.as_tool_calls(tool_calls.whole_calls(deltas), names)
                async for delta in deltas:
                    yield delta

    def _auto_calls_checked(self, answer: AsyncIterator[Delta], ask: ChatAsk, source: str | list[dict[str, Any]],
                            gp: GenParams, extra: dict[str, Any], tools: list[dict[str, Any]],
                            names: list[str], *, after_result: bool = False) -> AsyncIterator[Delta]:
        """``answer`` (``tool_choice`` auto) with a call that misses written again as a required call:
        one of a strict tool whose arguments do not fit (under that tool's grammar), or an answer
        that only calls tools not offered (under the offered tools' grammar), unless it comes right
        after a tool result: the model then is to answer from it (a required call there called a
        tool nobody asked for), and :func:`~.tool_calls.answer_after_result` asks it to."""
        top = ask.logprobs

        def required(offered: list[dict[str, Any]]) -> AsyncIterator[Delta]:
            return self._run_prepared(source, gp, ask.lane, {**extra, "json_schema": tool_calls.call_schema(offered)},
                                      tools=tools, forced=True, names=[t["function"]["name"] for t in offered],
                                      top_logprobs=top, key=ask.slot_key)

        strict = tool_calls.strict_tools(tools)
        if strict:
            answer = tool_calls.enforce_strict(answer, strict, lambda name: required(
                [t for t in tools if t["function"]["name"] == name]))
        return answer if after_result else tool_calls.call_offered(answer, names, lambda: required(tools))

    @staticmethod
    def _read_turns(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, *,
                    forced: bool) -> list[dict[str, Any]]:
        """The turns as our own engine's model reads them: while it may still call a tool or answer,
        each run of tool results ends with :data:`~.tool_calls.RESULT_HINT`."""
        return tool_calls.with_result_hints(messages) if tools and not forced else messages

    def _external(self, ask: ChatAsk, messages: list[dict[str, Any]], passthrough: dict[str, Any],
                  gp: GenParams) -> AsyncIterator[Delta]:
        """An external engine: OpenAI's fields on its chat endpoint."""
        payload: dict[str, Any] = {"messages": messages, **passthrough, **self._reasoning(ask)}
        if ask.tools:
            payload.update(tools=[dict(t) for t in ask.tools], tool_choice=ask.tool_choice)
        if ask.parallel_tool_calls is not None:
            payload["parallel_tool_calls"] = ask.parallel_tool_calls
        if ask.logprobs is not None:
            payload.update(logprobs=True, top_logprobs=ask.logprobs)
        if ask.schema is not None:
            payload["response_format"] = ({"type": "json_object"} if ask.schema_name is None else {
                "type": "json_schema", "json_schema": {"name": ask.schema_name, "schema": dict(ask.schema)}})
        return self._run("/chat/completions", payload, gp, ask.lane)

    @staticmethod
    async def _prepare(base_url: str, headers: dict[str, str], source: str | list[dict[str, Any]],
                       tools: list[dict[str, Any]] | None = None, forced: bool = False) -> tuple[list[int], str]:
        """The prompt's tokens (a chat rendered by the engine's template first, with ``tools``; a
        ``forced`` call opened with the template's own call opener) and that opener; both calls
        are idempotent, so one sent on a connection the engine had just closed is sent again, once."""
        async def once() -> tuple[list[int], str]:
            text = source if isinstance(source, str) else tool_calls.fix_rendered(await prompts.render_chat(
                transport.client(), base_url, headers, source, tools))
            opener = tool_calls.call_prefix(text) if forced else ""
            return await prompts.tokenize(transport.client(), base_url, headers, text + opener), opener

        try:
            return await once()
        except httpx.RemoteProtocolError:
            return await once()

    async def _run_prepared(self, source: str | list[dict[str, Any]], gp: GenParams, lane: str,
                            extra: dict[str, Any] | None = None, *, tools: list[dict[str, Any]] | None = None,
                            forced: bool = False, names: list[str] | None = None,
                            top_logprobs: int | None = None, key: str | None = None) -> AsyncIterator[Delta]:
        """Render (a chat) and tokenize once, check the context, then run on an engine slot chosen
        by the prompt's length (see :mod:`.prompts`); with ``names``, calls of those tools in the
        answer become ``tool_calls`` (:mod:`.tool_calls`); with ``top_logprobs``, each token's
        logprob keeps that many alternatives."""
        assert self._n_ctx is not None and isinstance(self.gate, LaneGate)
        seeded = gp.seed is not None and self._solo is not None
        async with self._leased(seeded) as target:
            try:
                tokens, opener = await self._prepare(target.base_url, target.headers, source, tools, forced)
            except httpx.HTTPError as exc:
                if target.broken is not None:
                    target.broken()
                raise EngineUnavailable(f"{self.name}: the engine at {target.base_url} could not prepare the prompt "
                                        f"({type(exc).__name__})") from exc
            if extra and "json_schema" in extra:  # what the grammar enforces, cheaper to decode
                extra = {k: v for k, v in extra.items() if k != "json_schema"} | grammar.engine_fields(
                    extra["json_schema"])
            body = {"model": self._model, "prompt": tokens, **request_body(gp, llama=True), **(extra or {}),
                    **(target.extra or {})}
            prompts.fit(self.name, tokens, self._n_ctx, body)
            # a seeded request runs alone, on the solo process (see .lanes): the same request, the same answer
            async with self.gate.turn(lane, long=len(tokens) > prompts.LONG_PROMPT_TOKENS, key=key,
                                      group=target.group, exclusive=seeded) as slot:
                body["id_slot"] = slot
                deltas = watchdog.guarded(self.name, target, "/completions", body)
                if top_logprobs is not None:
                    deltas = _keep_top(deltas, top_logprobs)
                if names:
                    deltas = tool_calls.as_tool_calls(deltas, names, prefix=opener, forced=forced)
                async for delta in deltas:
                    yield delta

    async def _run(self, path: str, payload: dict[str, Any], gp: GenParams, lane: str) -> AsyncIterator[Delta]:
        async with self.gate.turn(lane) as slot, self._leased() as target:
            body = {"model": self._model, **payload, **request_body(gp, llama=self._llama), **(target.extra or {})}
            if slot is not None and self._n_ctx is not None:
                body["id_slot"] = slot  # our own engine: the slot the gate gave this request
            async for delta in watchdog.guarded(self.name, target, path, body):
                yield delta

    @contextlib.asynccontextmanager
    async def _leased(self, seeded: bool = False) -> AsyncIterator[Endpoint]:
        """Where a request goes (``endpoint`` asked in a thread: it may start the engine), released after it;
        ``seeded``: the solo process."""
        with progress.loading():  # a first request starts the engine's process
            target = await asyncio.to_thread(self._solo if seeded and self._solo is not None else self._endpoint)
        try:
            yield target
        finally:
            if target.release is not None:
                target.release()

def _forced_logprob(name: str, reply: dict[str, Any], token: int, position: int) -> float:
    """The forced ``token``'s log-probability in llama-server's ``/completion`` answer."""
    probs = reply.get("completion_probabilities") or []
    if not probs:  # llama-server reports a token only once the text it generated is whole UTF-8
        raise CannotServe(f"{name}: the engine reports no probability for token {token} at position {position}: "
                          "its text ends inside a UTF-8 character (a byte token)")
    if probs[0].get("id") != token:
        raise EngineUnavailable(f"{name}: the engine generated token {probs[0].get('id')} at position {position}, "
                                f"not the forced {token}")
    logprob = float(probs[0]["logprob"])
    if logprob < UNDERFLOW:  # a probability of 0 in float32 comes back as the lowest float, not -inf
        raise CannotServe(f"{name}: token {token}'s probability at position {position} is below float32's range")
    return logprob


async def _keep_top(deltas: AsyncIterator[Delta], top: int) -> AsyncIterator[Delta]:
    """``deltas`` with each token's ``top_logprobs`` cut to ``top`` (the engine sends at least one)."""
    async for delta in deltas:
        if delta.logprobs:
            delta = dataclasses.replace(delta, logprobs=[{**e, "top_logprobs": (e.get("top_logprobs") or [])[:top]}
                                                         for e in delta.logprobs])
        yield delta


def llama_endpoint(server: LlamaServer, adapter: Path | None, *, solo: bool = False) -> Callable[[], Endpoint]:
    """Requests for ``server``'s base model, or with ``adapter`` applied; ``solo``: on its solo process
    (:meth:`LlamaServer.solo`)."""

    def endpoint() -> Endpoint:
        engine = server.solo() if solo else server
        lease: Lease = engine.acquire(adapter)
        watch = Watch(engine.config.stall_seconds, engine.config.request_seconds,
                      unstick=lambda slot, stretch: engine.unstick(lease, slot, stretch), renew=endpoint)
        return Endpoint(lease.url + "/v1", lease.key, {"lora": lease.lora(adapter)} if lease.adapters else None,
                        release=lambda: engine.release(lease), broken=lambda: engine.report_failure(lease),
                        group=str(adapter) if adapter is not None else None, watch=watch)

    return endpoint

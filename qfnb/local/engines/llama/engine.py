"""A model on qfnb's own ``llama-server``: :class:`LlamaEngine`, admitting every request in one step
(:meth:`LlamaEngine.admitted`: prepared and fitted by :mod:`.prompts`, the gate's turn, the watched
stream); who prepares a chat is its chat layer (``QFNB_LLAMA_CHAT``), :class:`OwnChat` (token ids to
``/completions``) or :class:`ServerChat` (turns to the server's ``/v1/chat/completions``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from qfnb.local.engines.ask import BATCH, INTERACTIVE, Ask, ChatAsk, GenParams, TextAsk
from qfnb.local.engines.base import (
    CannotServe,
    Delta,
    PromptTooLong,
    common_prefix,
    refuse_tool_turns,
    render_gemma,
    text_turns,
)
from qfnb.local.engines.call_state import progress
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import answer_check, continuation, gbnf, grammar, prompts, tool_calls, watchdog
from qfnb.local.engines.llama.infill import InfillAsk
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint, Watch
from qfnb.local.engines.llama.process.server import EngineUnavailable, Lease, LlamaServer

__all__ = ["CHAT_LAYER_OF", "ChatLayer", "LlamaEngine", "OwnChat", "ServerChat", "llama_endpoint",
           "llama_ready_endpoint"]

log = logging.getLogger(__name__)

#: the logit bias that forces a token (:meth:`LlamaEngine.token_logprobs`): larger than any gap between
#: two raw logits, and not seen by the probability reported (it is taken before the sampler's bias)
FORCE_BIAS = 1e9
#: a log-probability below this is llama-server's stand-in for a probability of 0 (float32's lowest)
UNDERFLOW = -1e30
#: the seed of an exact scoring call: any seed makes the platform's build compute its batches with
#: batch-invariant kernels (scripts/llama_server_seed_invariant.patch); the forced token makes the sampling moot
SCORING_SEED = 1
#: the fewest positions of one span of :meth:`LlamaEngine.token_logprobs` (each span reads its prefix once)
MIN_SPAN = 4

Turns = list[dict[str, Any]]


class ChatLayer(Protocol):
    """Who prepares a chat for the engine: its answer to ``ask`` (tools already checked)."""

    def answer(self, engine: LlamaEngine, ask: ChatAsk, gp: GenParams) -> AsyncIterator[Delta]: ...


class LlamaEngine:
    """An :class:`~qfnb.local.engines.api.Engine` on our own llama-server. ``endpoint`` is called (in a
    thread) for each request and says where to send it: it starts the process if needed and picks the
    adapter; ``ready``, where given, says it on the event loop when that needs nothing started or
    loaded (None: ask ``endpoint``). ``template="gemma"`` renders the Gemma turn format here (the base
    GGUF has no chat template), whatever the chat layer."""

    def __init__(self, name: str, endpoint: Callable[[], Endpoint], *, gate: LaneGate, n_ctx: int,
                 template: str = "native", stop: tuple[str, ...] = (), chat_layer: str = "own",
                 ready: Callable[[], Endpoint | None] | None = None) -> None:
        self.name, self.gate, self.n_ctx, self.template, self.stop = name, gate, n_ctx, template, stop
        self._endpoint, self._ready = endpoint, ready
        self.chat_layer: ChatLayer = CHAT_LAYER_OF["own" if template == "gemma" else chat_layer]

    @property
    def can_call_tools(self) -> bool:
        """Whether the model has its own chat template (tools are rendered with it); Gemma's base has none."""
        return self.template != "gemma"

    def generate(self, ask: Ask) -> AsyncIterator[Delta]:
        gp = ask.engine_params(self.stop)
        if isinstance(ask, TextAsk):
            return self.admitted(ask.prompt, gp, ask.lane)
        refuse_tool_turns(self.name, ask, has_template=self.can_call_tools)
        return self.chat_layer.answer(self, ask, gp)

    def resume(self, ask: ChatAsk, text: str) -> AsyncIterator[Delta] | None:
        """:meth:`.api.Engine.resume`: the turns as :class:`OwnChat` sends them with ``text`` after the opened
        reply, as token ids to ``/completions``, under :func:`.continuation.rest_grammar`. None for a
        chat with tools (a call's grammar is not a schema's) or where that rest cannot be written."""
        if ask.schema is None or ask.offered_tools:
            return None
        try:
            rest = continuation.rest_grammar(dict(ask.schema), text)
        except gbnf.Unwritable as exc:
            log.info("%s: the rest of the answer cannot be written: %s", self.name, exc)
            return None
        fields: dict[str, Any] = {**ask.sampling.penalties(), "grammar": rest}
        if ask.logprobs is not None:
            fields["logprobs"] = max(1, ask.logprobs)
        return self.admitted(self.source([dict(m) for m in ask.messages]), ask.engine_params(self.stop), ask.lane,
                             fields, prefix=text, top_logprobs=ask.logprobs, key=ask.slot_key)

    def infill(self, ask: InfillAsk) -> AsyncIterator[Delta]:
        """Fill in the middle (code completion; :mod:`.infill`): admitted as a chat is (:meth:`admission`), in
        the interactive lane, keyed by its document."""
        if self.template == "gemma":
            raise CannotServe(f"{self.name} cannot fill in the middle: only a coder model on qfnb's own llama-server "
                              "can (such as Qwen2.5-Coder-0.5B-Instruct)")
        return self._infilled(ask)

    async def _infilled(self, ask: InfillAsk) -> AsyncIterator[Delta]:
        async with self._leased() as target, contextlib.aclosing(
                self.admission(target, "/infill", {**ask.body(), **(target.extra or {})}, INTERACTIVE,
                               key=ask.key)) as deltas:
            async for delta in deltas:
                yield delta

    def source(self, messages: Turns, tools: Turns | None = None, *, forced: bool = False) -> str | Turns:
        """The turns as the model reads them: Gemma's rendered here; else tool results hinted while a call may follow
        (each run of them ends with :data:`~.tool_calls.RESULT_HINT`)."""
        if self.template == "gemma":
            return render_gemma(text_turns(messages))
        return tool_calls.with_result_hints(messages) if tools and not forced else messages

    async def count_tokens(self, ask: Ask) -> int:
        """The prompt's tokens as :meth:`generate` sends them: rendered by the model's template (a
        chat, with its tools) and tokenized by the engine, as the answer's ``prompt_tokens`` counts."""
        # a plain chat's text turns, else the turns as the model reads them, with the tools offered
        tools = None if isinstance(ask, TextAsk) or ask.plain else [dict(t) for t in ask.offered_tools] or None
        source = ask.prompt if isinstance(ask, TextAsk) else self.source(
            text_turns(ask.messages) if ask.plain else [dict(m) for m in ask.messages], tools,
            forced=bool(tools) and ask.tool_choice == "required")
        async with self._leased() as target:
            tokens, _ = await self._prepared(target, source, tools)
        return len(tokens)

    async def token_logprobs(self, tokens: Sequence[int], positions: Sequence[int], *,
                             spans: int | None = None, exact: bool = False) -> list[float]:
        """Each ``tokens[t]``'s log-probability after ``tokens[:t]`` (:meth:`.api.Engine.token_logprobs`),
        with this model's adapter: one ``/completion`` per position, its prompt ``tokens[:t]``, its one new
        token forced to ``tokens[t]`` by a logit bias and read from the raw logits (``n_probs``,
        ``post_sampling_probs`` off). The positions are cut into contiguous spans (:func:`position_spans`; at
        most one per batch slot, or ``spans``), run side by side in turns of the batch lane.

        Batching moves a number by a few hundredths of a nat (llama.cpp's kernels round differently at other
        batch sizes). ``exact``: each call seeded, so the platform's build uses batch-invariant kernels
        (scripts/llama_server_seed_invariant.patch), and each span reads its prefix afresh: the same numbers
        whatever runs beside them, at the cost of the batch."""
        ids = self._scored_ids(tokens)
        wanted = [int(t) for t in positions]
        if bad := [t for t in wanted if not 0 < t < len(ids)]:
            raise ValueError(f"positions {bad[:3]} are outside 1..{len(ids) - 1}")
        async with self._leased() as target:
            try:
                async with asyncio.TaskGroup() as group:
                    scored = [group.create_task(self._span_logprobs(target, ids, span, exact))
                              for span in position_spans(wanted, min(self.gate.slots, spans or self.gate.slots))]
            except ExceptionGroup as failed:  # the first span's failure, as one call would raise it
                raise failed.exceptions[0] from None
        return [logprob for task in scored for logprob in task.result()]

    def _scored_ids(self, tokens: Sequence[int]) -> list[int]:
        """``tokens`` as ids to score; PromptTooLong past the model's context."""
        ids = [int(t) for t in tokens]
        if len(ids) > self.n_ctx:
            raise PromptTooLong(f"{len(ids)} tokens; {self.name} has a context of {self.n_ctx} tokens")
        return ids

    async def _span_logprobs(self, target: Endpoint, ids: list[int], span: list[int], exact: bool) -> list[float]:
        """:meth:`token_logprobs` of the positions of one span, in order, in one scoring turn."""
        out: list[float] = []
        async with self._scoring(target, len(ids)) as score:
            for k, t in enumerate(span):
                body = {"prompt": ids[:t], "n_predict": 1, "temperature": 0.0, "n_probs": 1,
                        "post_sampling_probs": False, "logit_bias": [[ids[t], FORCE_BIAS]], "cache_prompt": True}
                if exact:
                    body |= {"seed": SCORING_SEED, "cache_prompt": k > 0}
                out.append(_forced_logprob(self.name, await score(body), ids[t], t))
        return out

    async def answer_logprob(self, messages: Sequence[dict[str, str]], answer: str) -> tuple[float, int]:
        """:meth:`.api.Engine.answer_logprob`: the turns rendered by the model's template, then each of the
        answer's tokens scored teacher-forced (:meth:`answer_token_logprobs`: in one call), and the end of the
        turn after it (the model's first stop string, Gemma's ``<end_of_turn>``; else its end-of-sequence token,
        Qwen's ``<|im_end|>``): the answer as the whole reply, as training labels it. Without it an answer
        that is the start of another ("Paris." and "Paris. Aye!") could never be the likelier one, whatever
        the model learnt."""
        full, start = await self.answer_tokens(messages, answer)
        if start >= len(full):
            return 0.0, 0
        return sum(await self.answer_token_logprobs(full, start)), len(full) - start

    async def answer_token_logprobs(self, tokens: Sequence[int], start: int) -> list[float]:
        """Each of ``tokens[start:]``'s log-probabilities after the tokens before it: in one call
        (:meth:`forced_logprobs`), else, where that call could not give them, each token forced alone
        (:meth:`token_logprobs`, spread over the slots)."""
        forced = await self.forced_logprobs(tokens, start)
        if forced is None:
            log.info("%s: the one-call scoring of %d tokens came back with other tokens or fewer probabilities; "
                     "each token forced alone", self.name, len(tokens) - start)
            forced = await self.token_logprobs(tokens, range(start, len(tokens)))
        return forced

    async def forced_logprobs(self, tokens: Sequence[int], start: int, *, exact: bool = False) -> list[float] | None:
        """Each of ``tokens[start:]``'s log-probabilities (the answer, then the end of the turn) in ONE
        ``/completion``: the prompt ``tokens[:start]``, a grammar of the answer's token ids (:func:`token_grammar`),
        the end token forced by a logit bias, each token read from the raw logits as :meth:`token_logprobs` reads
        them. None when the reply's tokens are not ``tokens[start:]``, or a token's probability went unreported (a
        byte token within a UTF-8 character) or underflowed: the caller then forces each token alone."""
        ids = self._scored_ids(tokens)
        if not 0 < start < len(ids):
            raise ValueError(f"start {start} is outside 1..{len(ids) - 1}")
        wanted = ids[start:]
        body = {"prompt": ids[:start], "n_predict": len(wanted), "temperature": 0.0, "n_probs": 1,
                "post_sampling_probs": False, "logit_bias": [[wanted[-1], FORCE_BIAS]], "return_tokens": True,
                "cache_prompt": not exact}
        if len(wanted) > 1:  # an empty answer: its end token alone, forced by the bias
            body["grammar"] = token_grammar(wanted[:-1])
        if exact:
            body["seed"] = SCORING_SEED
        async with self._leased() as target, self._scoring(target, len(ids)) as score:
            reply = await score(body)
        return _forced_reply_logprobs(reply, wanted)

    async def answer_tokens(self, messages: Sequence[dict[str, str]], answer: str) -> tuple[list[int], int]:
        """The tokens :meth:`answer_logprob` scores: the rendered turns, ``answer`` and the end of the turn,
        and where the answer starts among them."""
        turns = text_turns(list(messages))
        async with self._leased() as target:
            end = self.stop[0] if self.stop else target.eos_token
            client = transport.client()
            text = (render_gemma(turns) if self.template == "gemma"
                    else tool_calls.fix_rendered(await prompts.render_chat(client, target.base_url, target.headers,
                                                                           turns)))
            prompt = await prompts.tokenize(client, target.base_url, target.headers, text)
            full = await prompts.tokenize(client, target.base_url, target.headers, text + answer + end)
        return full, max(1, common_prefix(prompt, full))

    async def admitted(self, source: str | Turns, gp: GenParams, lane: str, fields: dict[str, Any] | None = None, *,
                       chat: bool = False, tools: Turns | None = None, forced: bool = False,
                       names: list[str] | None = None, top_logprobs: int | None = None,
                       key: str | None = None, prefix: str = "") -> AsyncIterator[Delta]:
        """The one admission step: ``source`` prepared (rendered with ``tools``, tokenized once unless it is a
        short text: :func:`.prompts.prepare`; refused if it does not fit), run on a slot chosen by its length:
        ``chat``, ``fields`` (turns, tools...) to the server's chat endpoint; else the prompt (token ids, or
        the short text) and ``fields`` (a ``json_schema`` as :mod:`.grammar` writes it) to ``/completions``.
        ``names``: calls of those tools become ``tool_calls``; ``top_logprobs``: kept per token; ``prefix``: the
        start of the reply, already written (the answer goes on from it)."""
        async with self._leased() as target:
            prompt, opener = await self._prepared(target, source, tools, forced, room=self.n_ctx - gp.max_tokens,
                                                  prefix=prefix)
            fields = dict(fields or {})
            if not chat and "json_schema" in fields:  # what the grammar enforces, cheaper to decode
                fields |= grammar.engine_fields(fields.pop("json_schema"))
            # a seeded request shares the batch (the build computes such batches with batch-invariant
            # kernels: scripts/llama_server_seed_invariant.patch) and reads its whole prompt afresh: a prefix
            # reused from a request computed without them would round differently
            body = {"model": self.name, **({} if chat else {"prompt": prompt}), **gp.openai_fields(),
                    "repeat_penalty": gp.repeat_penalty, "min_p": 0.0, "cache_prompt": gp.seed is None,
                    **fields, **(target.extra or {})}
            prompts.fit(self.name, prompt, self.n_ctx, body)
            admitted = self.admission(target, "/chat/completions" if chat else "/completions", body, lane,
                                      long=prompts.is_long(prompt), key=key)
            async with contextlib.aclosing(admitted):  # its turn ends with the answer, also when the reader leaves
                deltas: AsyncIterator[Delta] = admitted
                if top_logprobs is not None:
                    deltas = _keep_top(deltas, top_logprobs)
                if names and chat:  # the server's calls whole, then the calls it left as text (a small model's)
                    deltas = tool_calls.as_tool_calls(tool_calls.whole_calls(deltas), names)
                elif names:
                    deltas = tool_calls.as_tool_calls(deltas, names, prefix=opener, forced=forced)
                async for delta in deltas:
                    yield delta

    async def _prepared(self, target: Endpoint, source: str | Turns, tools: Turns | None, forced: bool = False, *,
                        room: int | None = None, prefix: str = "") -> tuple[prompts.Prompt, str]:
        """The admission's first step, before any turn of the gate (rendering and tokenizing take no slot of the
        engine): ``source`` prepared (:func:`.prompts.prepare`); an engine that cannot is marked broken (its lease
        renewed) and :class:`EngineUnavailable` raised. A count of the prompt's tokens (:meth:`count_tokens`) is
        this step alone."""
        try:
            return await prompts.prepare(target.base_url, target.headers, source, tools, forced, room=room,
                                         prefix=prefix)
        except httpx.HTTPError as exc:
            if target.broken is not None:
                target.broken()
            raise EngineUnavailable(f"{self.name}: the engine at {target.base_url} could not prepare the prompt "
                                    f"({type(exc).__name__})") from exc

    async def admission(self, target: Endpoint, path: str, body: dict[str, Any], lane: str, *, long: bool = False,
                        key: str | None = None) -> AsyncGenerator[Delta, None]:
        """Every generation's one admission: the gate's turn in ``lane`` (a slot chosen by the prompt's
        length, ``key``'s slot when it has one), then ``body`` streamed from ``path`` under the engine's stall
        watchdog and compute deadline, sent again as they decide (:func:`.watchdog.guarded`; a pooled connection
        the engine had closed: :func:`.transport.stream`)."""
        async with self.gate.turn(lane, long=long, key=key, group=target.group) as slot:
            async for delta in watchdog.guarded(self.name, target, path, {**body, "id_slot": slot}):
                yield delta

    @contextlib.asynccontextmanager
    async def _scoring(self, target: Endpoint, tokens: int) -> AsyncIterator[Callable[[dict[str, Any]],
                                                                                      Awaitable[dict[str, Any]]]]:
        """A scoring call's admission, as a generation's (:meth:`admission`): a turn of the gate's batch lane (a
        slot chosen by the prompt's ``tokens``), in which each ``/completion`` body is sent on that slot under the
        engine's stall watchdog and compute deadline and sent again to an engine restarted under it
        (:func:`.watchdog.guarded_reply`; the turn's next calls go to it)."""
        current, renewed = target, None

        async def score(body: dict[str, Any]) -> dict[str, Any]:
            nonlocal current, renewed
            reply, fresh = await watchdog.guarded_reply(self.name, current, "/completion",
                                                        {**body, "id_slot": slot, **(current.extra or {})})
            if fresh is not None:  # the engine was restarted: the turn's next calls go to the new one
                watchdog.release(renewed)
                current = renewed = fresh
            return reply

        async with self.gate.turn(BATCH, long=tokens > prompts.LONG_PROMPT_TOKENS, group=target.group) as slot:
            try:
                yield score
            finally:
                watchdog.release(renewed)

    @contextlib.asynccontextmanager
    async def _leased(self) -> AsyncIterator[Endpoint]:
        """Where a request goes, released after it: a lease on the running process, taken on the event
        loop (``ready``), else ``endpoint`` asked in a thread (it may start the engine)."""
        target = self._ready() if self._ready is not None else None
        if target is None:
            with progress.loading():  # a first request starts the engine's process
                target = await asyncio.to_thread(self._endpoint)
        try:
            yield target
        finally:
            watchdog.release(target)


class OwnChat:
    """qfnb's own chat layer: the turns and tools rendered with the model's template and tokenized
    here, sent as token ids to ``/completions``; a JSON schema constrains decoding through the
    engine's grammar, tool calls are decided by :mod:`.tool_calls` and ``logprobs`` come with the
    generated tokens (a call's too)."""

    def answer(self, engine: LlamaEngine, ask: ChatAsk, gp: GenParams) -> AsyncIterator[Delta]:
        if ask.plain:
            return engine.admitted(engine.source(text_turns(ask.messages)), gp, ask.lane, key=ask.slot_key)
        messages = [dict(m) for m in ask.messages]
        tools = [dict(t) for t in ask.offered_tools] or None
        forced = bool(tools) and ask.tool_choice == "required"
        source = engine.source(messages, tools, forced=forced)
        extra = {**ask.sampling.penalties(), **({"json_schema": dict(ask.schema)} if ask.schema is not None else {})}
        top = ask.logprobs
        if top is not None:
            extra["logprobs"] = max(1, top)  # the engine's count of alternatives (0 would send none)
        names = [t["function"]["name"] for t in tools] if tools else None
        if forced and tools:
            extra["json_schema"] = tool_calls.call_schema(tools)

        def attempt(n: int) -> AsyncIterator[Delta]:
            return engine.admitted(source, answer_check.resample_params(gp, n), ask.lane, extra, tools=tools,
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
        if tools and names and not forced:  # a call that misses, written again as a required call
            required = _required_call(engine, ask, source, gp, extra, tools)
            answer = _strict_checked(answer, tools, required)
            if not after_result:  # right after a result the model is to answer from it (below)
                answer = tool_calls.call_offered(answer, names, lambda: required(tools))
        if names and not forced and after_result:  # a repeated call, or one written as text, is answered
            return tool_calls.answer_after_result(answer, messages, lambda closing: engine.admitted(
                closing, gp, ask.lane, extra, top_logprobs=top, key=ask.slot_key))
        return answer


class ServerChat:
    """The server's own chat layer: a chat (not a required call, nor tools beside a schema) on
    llama-server's ``/v1/chat/completions``, its template rendering the turns and tools and its parser
    reading the calls it knows. What stays here: the token count (context and slot), the schema as
    :mod:`.grammar` writes it, the calls a small model writes as text (:func:`.tool_calls.as_tool_calls`),
    the answer's check against the whole schema, a strict tool's call under ``auto`` written again
    under its grammar (by :class:`OwnChat`'s path, as a required call is), and a call repeated after
    its result answered from it."""

    def answer(self, engine: LlamaEngine, ask: ChatAsk, gp: GenParams) -> AsyncIterator[Delta]:
        if ask.plain:
            return engine.admitted(text_turns(ask.messages), gp, ask.lane, {"messages": text_turns(ask.messages)},
                                   chat=True, key=ask.slot_key)
        messages = [dict(m) for m in ask.messages]
        tools = [dict(t) for t in ask.offered_tools] or None
        # a required call stays with our own layer: the server's own grammar for it (Qwen2.5's template)
        # let the 0.5B model write the call as bare JSON and go on to the token cap (bench/structured_output.py)
        if tools and (ask.tool_choice == "required" or ask.schema is not None):
            return CHAT_LAYER_OF["own"].answer(engine, ask, gp)
        passthrough = ask.sampling.penalties()
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
        fields.update(grammar.engine_fields(schema) if schema is not None else {})

        def attempt(n: int) -> AsyncIterator[Delta]:
            return engine.admitted(messages, answer_check.resample_params(gp, n), ask.lane, fields, chat=True,
                                   tools=tools, names=names, top_logprobs=top, key=ask.slot_key)

        answer = attempt(0) if schema is None or grammar.grammar_is_exact(schema) else answer_check.checked(
            attempt, lambda deltas: answer_check.text_miss("".join(d.text for d in deltas), schema))
        if tools:  # an auto call of a strict tool that does not fit: again, under its grammar
            extra = {**passthrough, **({"logprobs": max(1, top)} if top is not None else {})}
            answer = _strict_checked(answer, tools, _required_call(engine, ask, messages, gp, extra, tools))
        if names and tool_calls.follows_result(messages):  # a repeated call is answered from its result
            unoffered = {k: v for k, v in fields.items() if k not in ("tools", "tool_choice")}
            return tool_calls.answer_after_result(answer, messages, lambda closing: engine.admitted(
                closing, gp, ask.lane, {**unoffered, "messages": closing}, chat=True, top_logprobs=top))
        return answer


#: the chat layers by their setting's value (``QFNB_LLAMA_CHAT``, :attr:`~..options.EngineOptions.chat_layer`)
CHAT_LAYER_OF: dict[str, ChatLayer] = {"own": OwnChat(), "server": ServerChat()}


def _required_call(engine: LlamaEngine, ask: ChatAsk, source: str | Turns, gp: GenParams, extra: dict[str, Any],
                   tools: Turns) -> Callable[[Turns], AsyncIterator[Delta]]:
    """A call of ``auto`` that missed, written again as a required call of the ``offered`` tools
    (under their grammar, prepared here as :class:`OwnChat` prepares one)."""
    def required(offered: Turns) -> AsyncIterator[Delta]:
        return engine.admitted(source, gp, ask.lane, {**extra, "json_schema": tool_calls.call_schema(offered)},
                               tools=tools, forced=True, names=[t["function"]["name"] for t in offered],
                               top_logprobs=ask.logprobs, key=ask.slot_key)

    return required


def _strict_checked(answer: AsyncIterator[Delta], tools: Turns,
                    required: Callable[[Turns], AsyncIterator[Delta]]) -> AsyncIterator[Delta]:
    """``answer`` with a strict tool's call whose arguments do not fit written again under that tool's grammar."""
    strict = tool_calls.strict_tools(tools)
    return tool_calls.enforce_strict(answer, strict, lambda name: required(
        [t for t in tools if t["function"]["name"] == name])) if strict else answer


def position_spans(positions: list[int], slots: int) -> list[list[int]]:
    """``positions`` cut into at most ``slots`` contiguous spans of nearly equal length, none shorter
    than :data:`MIN_SPAN` positions (a span's first call reads its prefix afresh on its slot)."""
    if not positions:
        return []
    count = max(1, min(slots, len(positions) // MIN_SPAN))
    size, extra = divmod(len(positions), count)
    out, start = [], 0
    for k in range(count):
        end = start + size + (k < extra)
        out.append(positions[start:end])
        start = end
    return out


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


def token_grammar(tokens: Sequence[int]) -> str:
    """A GBNF grammar that admits ``tokens`` alone, each matched by its id (``<[id]>``), then the end of the
    generation: the server lets an end-of-generation token through only once the grammar is complete."""
    return "root ::= " + " ".join(f"<[{int(t)}]>" for t in tokens)


def _forced_reply_logprobs(reply: dict[str, Any], wanted: list[int]) -> list[float] | None:
    """The log-probabilities of ``wanted`` in a ``/completion`` answer that generated them, in order; None when
    it generated other tokens, reported fewer, or a probability below float32's range."""
    probs = reply.get("completion_probabilities") or []
    if [int(t) for t in reply.get("tokens") or []] != wanted or [p.get("id") for p in probs] != wanted:
        return None
    logprobs = [float(p["logprob"]) for p in probs]
    return None if min(logprobs) < UNDERFLOW else logprobs


async def _keep_top(deltas: AsyncIterator[Delta], top: int) -> AsyncIterator[Delta]:
    """``deltas`` with each token's ``top_logprobs`` cut to ``top`` (the engine sends at least one)."""
    async for delta in deltas:
        if delta.logprobs:
            delta = dataclasses.replace(delta, logprobs=[{**e, "top_logprobs": (e.get("top_logprobs") or [])[:top]}
                                                         for e in delta.logprobs])
        yield delta


def llama_endpoint(engine: LlamaServer, adapter: Path | None) -> Callable[[], Endpoint]:
    """Requests for ``engine``'s base model, or with ``adapter`` applied (may block: it may start the
    process or load the adapter)."""

    def endpoint() -> Endpoint:
        return _endpoint_of(engine, adapter, engine.acquire(adapter), endpoint)

    return endpoint


def llama_ready_endpoint(engine: LlamaServer, adapter: Path | None) -> Callable[[], Endpoint | None]:
    """Where :func:`llama_endpoint` would send a request, if the running process already serves ``adapter``
    (nothing blocks); None otherwise."""
    renew = llama_endpoint(engine, adapter)

    def ready() -> Endpoint | None:
        lease = engine.leased(adapter)
        return None if lease is None else _endpoint_of(engine, adapter, lease, renew)

    return ready


def _endpoint_of(engine: LlamaServer, adapter: Path | None, lease: Lease, renew: Callable[[], Endpoint]) -> Endpoint:
    watch = Watch(engine.config.stall_seconds, engine.config.request_seconds,
                  unstick=lambda slot, stretch: engine.unstick(lease, slot, stretch), renew=renew)
    return Endpoint(lease.url + "/v1", lease.key, {"lora": lease.lora(adapter)} if lease.adapters else None,
                    release=lambda: engine.release(lease), broken=lambda: engine.report_failure(lease),
                    group=str(adapter) if adapter is not None else None, watch=watch,
                    stream_interval=engine.config.stream_interval, engine_paces=lease.instance.paces_streams,
                    eos_token=lease.instance.eos_token)

"""One model call as the record sees it: cache lookup, budget reservation, ledger row, provenance.

The record stage (:mod:`qfnb._core.http.stages.record`) drives a :class:`Recording`: ``lookup``
finds the request in the response cache (when the config's ``cache`` is on); ``reserve`` holds its
worst case against the budget; ``finish`` stores a whole answer, settles the budget to the real
usage, writes the ledger row and puts ``provenance`` on the response; ``release`` gives the
reservation back when the call failed. A stream is stored only when its last chunk arrived; one
closed early (or cut) is still settled and recorded with what arrived: the last chunk's
``usage`` (v1 chunks carry the running count) or, without one, the prompt's estimate plus one
token per chunk that carried text (a lower bound of what the engine generated).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qfnb._core.config import Config
from qfnb._core.http.recording.substitution import announce
from qfnb._core.http.response import QfRequest, QfResponse
from qfnb._core.record.budget import Budget, BudgetExceeded, Reservation, active_budget
from qfnb._core.record.cache import CachedAnswer, cache_key, current_repeat, deciding_fields, default_cache, mode_for
from qfnb._core.record.ledger import UsageRow, default_ledger, earlier_tries
from qfnb._core.record.prices import prices, worst_yuan
from qfnb._core.record.tokens import token_bound
from qfnb.protocol.limits import DEFAULT_OUTPUT_TOKENS, OUTPUT_TOKEN_FIELDS, SCHEMA_RESAMPLES
from qfnb.protocol.wires.codec import fastjson

__all__ = [
    "UNRECORDED",
    "Recording",
    "account_hash",
    "continued",
    "conversation_tokens",
    "end_user",
    "generates",
    "output_cap",
    "prompt_estimate",
    "prompt_hash",
    "rerank_estimate",
    "schema_answers",
    "usage_of",
    "with_output_cap",
    "with_usage_chunk",
    "worst_case",
]

#: routes outside the record: counting a prompt's tokens (``/tokenizer``) generates nothing and is
#: not billed, so it neither spends a budget nor adds a row to the ledger
UNRECORDED = ("tokenizer",)
#: body fields that are the prompt itself (hashed in provenance), not parameters
_PROMPT_FIELDS = ("messages", "prompt", "input", "texts", "query", "system")
_CACHED_HEADERS = {"x-qfnb-cache": "hit"}


#: the prompt's canonical JSON (made once: ``json.dumps`` with options builds an encoder per call)
_PROMPT_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def prompt_hash(body: Mapping[str, Any]) -> str:
    """A short sha256 of the request's prompt fields (messages, prompt, system...)."""
    prompt = {k: body[k] for k in _PROMPT_FIELDS if k in body}
    text = _PROMPT_JSON.encode(prompt)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def account_hash(config: Config) -> str:
    """A short sha256 of the account a cloud call is made as (its first key), "" for none: two
    accounts' answers never share a cache entry, and no key enters one."""
    for secret in (config.ak, config.access_key, config.access_token, config.bearer_token):
        if secret:
            return hashlib.sha256(secret.encode()).hexdigest()[:16]
    return ""


#: the tool schemas: rendered into the prompt as JSON
_SCHEMA_FIELDS = ("tools", "functions")
#: body fields the model reads besides the prompt itself (the tool schemas are rendered into it)
_READ_FIELDS = (*_PROMPT_FIELDS, "documents", "instructions", *_SCHEMA_FIELDS)
#: a turn's own markers at most (ChatML's ``<|im_start|>``, ``<|im_end|>`` and two newlines: 4)
TURN_TOKENS = 8
#: a chat template's own tokens beyond the request's JSON, at most: a default system prompt and the
#: generation prompt (Qwen2.5's: about 25)
TEMPLATE_TOKENS = 32
#: what a text adds to its own tokens in an embedding or rerank model (``[CLS]``/``[SEP]``, BOS/EOS)
PAIR_TOKENS = 4
#: routes whose calls read documents beside a query (what :func:`rerank_estimate` counts)
_RERANK = ("reranker", "v2/rerankers", "v2/rerank")
#: what a template adds when tools are offered: its tool-use instructions (Qwen2.5's: about 110)
TOOLS_TEMPLATE_TOKENS = 128
#: the output-cap field a budget sends for a call that sets none, per recorded route: each API's own
#: name (the v2 chat API's is ``max_completion_tokens``, v1's ``max_output_tokens``; text completions
#: have only ``max_tokens``)
_CAP_FIELD = {"chat": "max_output_tokens", "completions": "max_output_tokens", "plugin": "max_output_tokens",
              "custom": "max_output_tokens", "v2/chat": "max_completion_tokens", "v2/completions": "max_tokens",
              "v2/responses": "max_output_tokens", "v2/messages": "max_tokens"}


def _read_bound(value: Any) -> int:
    """The token bound of a field the template renders: each text (a message's role and content, a
    content part's text) with one token beside it, and :data:`TURN_TOKENS` for each object (a turn)."""
    if isinstance(value, str):
        return token_bound(value) + 1
    if isinstance(value, Mapping):
        return TURN_TOKENS + sum(_read_bound(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_read_bound(v) for v in value)
    return 0 if value is None or isinstance(value, bool) else token_bound(str(value)) + 1


def prompt_estimate(body: Mapping[str, Any]) -> int:
    """A call's prompt tokens at most: the token bound (:func:`~qfnb._core.record.tokens.token_bound`)
    of what the model reads: its prompt fields' texts, each turn's own markers, and its tool schemas
    as the JSON they are rendered as."""
    total = 0
    for name in _READ_FIELDS:
        if name not in body:
            continue
        value = body[name]
        total += token_bound(json.dumps(value, ensure_ascii=False)) if name in _SCHEMA_FIELDS else _read_bound(value)
    return total


def _texts(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [t for t in value if isinstance(t, str)] if isinstance(
        value, list) else []


def rerank_estimate(body: Mapping[str, Any]) -> int:
    """A rerank call's tokens at most: a cross-encoder reads the query beside each document (a
    bi-encoder embeds it once), with :data:`PAIR_TOKENS` of its own a pair."""
    documents = _texts(body.get("documents"))
    query = token_bound(body["query"]) if isinstance(body.get("query"), str) else 0
    return prompt_estimate(body) + len(documents) * (query + PAIR_TOKENS)


def continued(api: str, body: Mapping[str, Any]) -> str | None:
    """The stored response a Responses call continues (``previous_response_id``), or None: the platform
    prepends that response's conversation to the call's input, and the budget must hold it too."""
    previous = body.get("previous_response_id")
    return previous if api == "v2/responses" and isinstance(previous, str) and previous else None


def conversation_tokens(response: Mapping[str, Any], response_id: str) -> int:
    """The tokens of the conversation a stored response ends: its ``usage`` input (which counted the
    conversation it continued) and output. BudgetExceeded when it carries no usage (nothing is sent:
    what a continuation would cost cannot be held)."""
    usage = response.get("usage")
    counts = [usage.get(k) for k in ("input_tokens", "output_tokens")] if isinstance(usage, Mapping) else []
    whole = [c for c in counts if isinstance(c, int) and not isinstance(c, bool)]
    if len(whole) != 2:
        raise BudgetExceeded(f"previous_response_id {response_id!r}: the stored response carries no usage, so what "
                             "continuing its conversation costs cannot be held to the budget; stopped before sending "
                             "(send the conversation as input instead, or clear the budget)")
    return whole[0] + whole[1]


def output_cap(body: Mapping[str, Any]) -> int | None:
    """The call's own cap on one answer's tokens, or None."""
    for name in OUTPUT_TOKEN_FIELDS:
        cap = body.get(name)
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            return cap
    return None


def generates(api: str) -> bool:
    """Whether calls of ``api`` generate tokens (embeddings, rerank and the tokenizer do not)."""
    return api in _CAP_FIELD


def worst_case(body: Mapping[str, Any], api: str = "chat") -> int:
    """What a call may use at most: its prompt (:func:`prompt_estimate`) with the template's
    tokens, and ``n`` answers of its output cap (:data:`DEFAULT_OUTPUT_TOKENS` when it sets none,
    which :func:`with_output_cap` sends)."""
    if api in _RERANK:
        return rerank_estimate(body)
    if not generates(api):  # embeddings: each text with its model's own tokens
        return prompt_estimate(body) + PAIR_TOKENS * len(_texts(body.get("input")) + _texts(body.get("texts")))
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    template = TEMPLATE_TOKENS + (TOOLS_TEMPLATE_TOKENS if body.get("tools") or body.get("functions") else 0)
    return prompt_estimate(body) + template + choices * (output_cap(body) or DEFAULT_OUTPUT_TOKENS)


def schema_answers(body: Mapping[str, Any]) -> int:
    """How many answers the local platform may write for one call: ``1 + SCHEMA_RESAMPLES`` when it
    checks the answer against a JSON schema (``response_format``/``text.format``/``output_config``
    of ``json_schema``, a required call's arguments, a strict tool's call), each reading the prompt
    again and each billed; else 1."""
    formats = (body.get("response_format"), (body.get("text") or {}).get("format") if isinstance(
        body.get("text"), Mapping) else None, (body.get("output_config") or {}).get("format") if isinstance(
        body.get("output_config"), Mapping) else None)
    schema = any(isinstance(f, Mapping) and f.get("type") == "json_schema" for f in formats)
    tools: list[Any] = body["tools"] if isinstance(body.get("tools"), list) else []
    strict = any(isinstance(t, Mapping) and (t.get("strict") or (isinstance(t.get("function"), Mapping)
                                                                  and t["function"].get("strict"))) for t in tools)
    choice = body.get("tool_choice")
    required = bool(tools) and (choice == "required" or (isinstance(choice, Mapping)
                                                         and choice.get("type") not in ("auto", "none")))
    return 1 + SCHEMA_RESAMPLES if schema or strict or required else 1


def with_output_cap(api: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with :data:`DEFAULT_OUTPUT_TOKENS` as its output cap when a budget is active and the
    call generates without one: what the budget reserved is then what the platform may spend."""
    field = _CAP_FIELD.get(api)
    if field is None or active_budget() is None or output_cap(body) is not None:
        return body
    return {**body, field: DEFAULT_OUTPUT_TOKENS}


def with_usage_chunk(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A stream's ``body`` asking for its usage chunk (``include_usage``: the ledger needs the engine's
    count), and whether the caller had not asked for it (then that chunk is kept from the caller)."""
    options = body.get("stream_options")
    if isinstance(options, Mapping) and options.get("include_usage") is True:
        return body, False
    return {**body, "stream_options": {**(options or {}), "include_usage": True}}, True


def _count(usage: Mapping[str, Any], *names: str) -> int | None:
    found = [usage[n] for n in names if isinstance(usage.get(n), int)]
    return sum(found) if found else None


def usage_of(bodies: list[Mapping[str, Any]]) -> dict[str, int]:
    """An answer's usage under OpenAI's names, the latest count of each kind its bodies carry (a
    stream: its chunks): ``usage`` (v1, OpenAI, Messages' ``message_delta``), a Responses event's
    ``response.usage`` and Messages' ``message.usage``; ``input_tokens`` (with Messages' cache reads)
    read as prompt tokens, ``output_tokens`` as completion tokens. {} when none carries one."""
    prompt = completion = total = None
    for body in reversed(bodies):
        for found in (body.get("usage"), (body.get("response") or {}).get("usage"),
                      (body.get("message") or {}).get("usage")):
            if not found or (type(found) is not dict and not isinstance(found, Mapping)):
                continue
            if prompt is None:
                prompt = _count(found, "prompt_tokens") if "prompt_tokens" in found else _count(
                    found, "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            if completion is None:
                completion = _count(found, "completion_tokens") if "completion_tokens" in found else _count(
                    found, "output_tokens")
            if total is None:
                total = _count(found, "total_tokens")
        if prompt is not None and completion is not None:
            break
    if prompt is None and completion is None and total is None:
        return {}
    return {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0,
            "total_tokens": total if total is not None else (prompt or 0) + (completion or 0)}


def _chunk_text(body: Mapping[str, Any]) -> bool:
    """Whether a stream chunk carried answer text (v1 ``result``, v2 ``choices[].delta.content``,
    a text completion's ``choices[].text``)."""
    if body.get("result"):
        return True
    choices = body.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, Mapping) and ((isinstance(c.get("delta"), Mapping) and c["delta"].get("content"))
                                    or (isinstance(c.get("text"), str) and c["text"]))
        for c in choices)


#: the body fields that name the end user a call was made for, the most specific first
_END_USER = ("safety_identifier", "user", "user_id")


def end_user(body: Mapping[str, Any]) -> str:
    """The end user a call's ``body`` names (OpenAI's ``safety_identifier``, its older ``user``,
    Qianfan's ``user_id``), or ""."""
    for name in _END_USER:
        value = body.get(name)
        if value and isinstance(value, str):
            return value
    return ""


def _served_by(responses: list[QfResponse]) -> str:
    """The model the platform says served an answer (``MODEL_HEADER``; the local platform sends it), or ""."""
    if len(responses) == 1:  # a whole answer
        return responses[0].served_model
    return next((r.served_model for r in responses if r.served_model), "")


def _with_prompt(origin: dict[str, Any], body: Mapping[str, Any] | bytes) -> dict[str, Any]:
    """A provenance: ``origin`` with the request's parameters and its prompt's hash, read from ``body`` (or
    from its bytes as sent)."""
    sent = fastjson.loads(body) if isinstance(body, bytes) else body
    params = {k: v for k, v in deciding_fields(sent).items() if k not in _PROMPT_FIELDS and k != "stream"}
    return {"model": origin["model"], "asked": origin["asked"], "api": origin["api"], "params": params,
            "prompt_hash": prompt_hash(sent), **origin}


class _Once:
    """``make()``, made on the first call and kept: one provenance for all of a stream's chunks. A copy or a
    pickle holds the provenance itself, made then."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], dict[str, Any]]) -> None:
        self._make: Callable[[], dict[str, Any]] | None = make
        self._made: dict[str, Any] = {}

    def __call__(self) -> dict[str, Any]:
        if self._make is not None:
            self._made, self._make = self._make(), None
        return self._made

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (self(),)


@dataclass
class Recording:
    """One inference call: what it asked, where, and (after ``finish``) what it cost."""

    config: Config
    api: str
    target: str
    body: dict[str, Any]
    stream: bool
    repeat: int = 0
    key: str | None = None
    hit: CachedAnswer | None = None
    #: the model that answered (the platform's ``MODEL_HEADER``); ``target`` until one did
    answered: str = ""
    #: the model name the caller asked by ("" when it named an endpoint; then ``target`` is what it asked)
    named: str = ""
    started: float = field(default_factory=time.perf_counter)

    held: Reservation | None = None
    budget: Budget | None = None
    #: the tokens of the stored conversation the platform prepends (a Responses continuation's)
    stored: int = 0
    #: the tries it took (the retry stage's attempts); the ledger's ``retries`` are the others, and
    #: the failed calls a batch made of the same input before it (:data:`~.ledger.earlier_tries`)
    tries: int = 1

    @classmethod
    def begin(cls, config: Config, api: str, target: str, body: dict[str, Any], *, stream: bool,
              repeat: int = 0, named: str = "") -> Recording:
        """A call about to be made (nothing is looked up or held yet)."""
        return cls(config, api, target, body, stream, repeat or current_repeat(), named=named)

    @property
    def caching(self) -> bool:
        """Whether the response cache is on for this call (read or refresh); never for a call that
        asks the platform to keep its answer (``store: true``): a replay would keep nothing."""
        return mode_for(self.config.cache) != "off" and self.body.get("store") is not True

    def lookup(self, served: str | None) -> bool:
        """Whether the cache answers this call (then :meth:`replay` it). ``served`` is what would
        answer (the served model's digest; "" where the platform names none); None (it could not
        be told) neither reads nor stores."""
        if served is None:
            return False
        mode = mode_for(self.config.cache)
        self.key = cache_key(platform=self.config.base_url, account=account_hash(self.config), route=self.api,
                             target=self.target, body=self.body, version=served or None, repeat=self.repeat)
        if mode == "on":
            self.hit = default_cache().get(self.key)
        return self.hit is not None

    @property
    def continues(self) -> str | None:
        """The stored response this call continues (see :func:`continued`)."""
        return continued(self.api, self.body)

    def reserve(self) -> None:
        """Hold the call's worst case (with :attr:`stored`) against the active budget (BudgetExceeded:
        nothing sent)."""
        if (budget := active_budget()) is not None:
            estimate = worst_case(self.body, self.api) + self.stored
            if self.config.embedded and generates(self.api):  # its resamples, each billed, are held too
                estimate *= schema_answers(self.body)
            # a model without a price is refused under a ¥ budget (UnpricedModel: nothing sent)
            yuan = worst_yuan(self.named or self.target, estimate, 0, local=self.config.embedded)
            what = "the next call" if output_cap(self.body) is not None else (
                f"the next call (without max_tokens: {DEFAULT_OUTPUT_TOKENS:,} an answer)")
            self.held, self.budget = budget.reserve(estimate, yuan, what=what), budget

    def release(self) -> None:
        """The call failed before an answer: give its reservation back."""
        if self.held is not None and self.budget is not None:
            self.budget.release(self.held)
        self.held = None

    @property
    def platform(self) -> str:
        return "local" if self.config.embedded else "cloud"

    def provenance(self, usage: Mapping[str, Any], latency: float) -> dict[str, Any]:
        """Where an answer came from; no secrets (the platform is named by its base URL)."""
        return _with_prompt(self._origin(usage, latency), self.body)

    def _origin(self, usage: Mapping[str, Any], latency: float) -> dict[str, Any]:
        """:meth:`provenance` without what it reads of the prompt (:func:`_with_prompt` adds it)."""
        cached: dict[str, Any] = {"hit": self.hit is not None}
        if self.hit is not None:
            cached["age_s"] = round(self.hit.age, 1)
        return {"model": self.answered or self.target, "asked": self.target, "api": self.api,
                "repeat": self.repeat, "usage": dict(usage), "latency_s": round(latency, 4), "cache": cached,
                "platform": self.platform, "base_url": self.config.base_url}

    # ---- a cached answer -----------------------------------------------------------------
    def replay(self, path: str) -> QfResponse | AsyncIterator[QfResponse]:
        """The cached answer as the platform gave it: one response, or its chunks in order."""
        hit = self.hit
        assert hit is not None
        request = QfRequest("POST", path)
        responses = [QfResponse(200, dict(_CACHED_HEADERS), dict(b), request, {"cache_hit": True})
                     for b in hit.bodies]
        self._account(responses, hit=True)
        if not self.stream:
            return responses[0]

        async def chunks() -> AsyncIterator[QfResponse]:
            for r in responses:
                yield r

        return chunks()

    # ---- a fresh answer ------------------------------------------------------------------
    def finish(self, result: QfResponse | AsyncIterator[QfResponse]) -> QfResponse | AsyncIterator[QfResponse]:
        """Store, account for and annotate a fresh answer (a stream: once it has ended)."""
        if isinstance(result, QfResponse):
            if self.key is not None:
                default_cache().put(self.key, self.target, [result.body], stream=False, model=_served_by([result]))
            self._account([result], hit=False)
            return result
        return self._watch(result)

    async def _watch(self, stream: AsyncIterator[QfResponse]) -> AsyncIterator[QfResponse]:
        seen: list[QfResponse] = []
        whole = False
        try:
            async for chunk in stream:  # an error or a cut stream raises here: nothing is stored
                seen.append(chunk)
                yield chunk
            whole = True
            if seen and self.key is not None:
                default_cache().put(self.key, self.target, [c.body for c in seen], stream=True,
                                    model=_served_by(seen))
        finally:  # closed early, cut or whole: what arrived is counted
            if seen:
                self._account(seen, hit=False, whole=whole)
            else:
                self.release()

    def _account(self, responses: list[QfResponse], *, hit: bool, whole: bool = True) -> None:
        self.answered = (self.hit.model if self.hit is not None else _served_by(responses)) or self.target
        usage: Mapping[str, Any] = usage_of([r.body for r in responses])
        if not usage and not whole:  # a stream closed early without a running count: a lower bound
            usage = {"prompt_tokens": prompt_estimate(self.body),
                     "completion_tokens": sum(_chunk_text(r.body) for r in responses)}
        latency = time.perf_counter() - self.started
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or prompt + completion)
        asked = self.target if self.target.lower() != self.answered.lower() else ""
        if asked:  # only a qfnb platform names the model that answered (MODEL_HEADER)
            announce(self.named or asked, self.answered)
        default_ledger().record(UsageRow(api=self.api, model=self.answered, asked=asked, platform=self.platform,
                                         prompt_tokens=prompt, completion_tokens=completion, total_tokens=total,
                                         latency_s=latency, cache_hit=hit, end_user=end_user(self.body),
                                         retries=0 if hit else self.tries - 1 + earlier_tries.get()))
        budget = self.budget if self.held is not None else active_budget()
        if not hit and budget is not None:
            model = self.named or self.target
            yuan = 0.0 if self.config.embedded else (prices().cost(model, prompt, completion) or 0.0)
            budget.settle(self.held, total, yuan)
            self.held = None
        sent = responses[0].request.content if responses[0].request is not None else b""
        # its prompt's part made on first read, from the bytes sent (a batch's rows are seldom asked where they
        # came from); it holds neither this record nor its body
        provenance = _Once(functools.partial(_with_prompt, self._origin(usage, latency), sent)) if sent else \
            self.provenance(usage, latency)
        for r in responses:
            r.provenance = provenance

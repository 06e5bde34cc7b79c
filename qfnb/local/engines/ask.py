"""The one typed request an engine serves: :class:`ChatAsk` (a chat) or :class:`TextAsk` (a raw
continuation), frozen, in the engine's own terms.

Every wire protocol (Qianfan v1, v2/OpenAI chat, and any later one) converts its parsed request
into one of these (:mod:`qfnb.local.convert`); an engine answers it with
:meth:`~qfnb.local.engines.api.Engine.generate`, a stream of :class:`~.base.Delta` s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from qfnb.protocol.limits import DEFAULT_OUTPUT_TOKENS
from qfnb.protocol.wires.chat.ranges import ENGINE_NAMES

__all__ = ["BATCH", "INTERACTIVE", "TOOL_TEMPERATURE", "Ask", "ChatAsk", "GenParams", "Sampling", "TextAsk",
           "ToolChoice"]

#: the lanes of :mod:`.lanes`: ``batch`` traffic (``X-Qfnb-Priority: batch``) waits behind interactive
INTERACTIVE = "interactive"
BATCH = "batch"

ToolChoice: TypeAlias = Literal["auto", "none", "required"]
#: the temperature of a tool loop's turn that sets none (:meth:`ChatAsk.engine_params`): greedy. At the
#: engine's default (0.8) the 1.5B tool model, handed a search result that held the answer, went on
#: searching for words it had sampled from that result (bench/syllabus_agents.py)
TOOL_TEMPERATURE = 0.0


@dataclass(frozen=True)
class GenParams:
    """Sampling settings with the engine's defaults filled in (:meth:`Sampling.engine_params`)."""

    temperature: float = 0.8
    top_p: float = 0.8
    top_k: int = 0  # 0: no top-k cut
    repeat_penalty: float = 1.0
    max_tokens: int = DEFAULT_OUTPUT_TOKENS
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-5

    def openai_fields(self) -> dict[str, Any]:
        """These settings as an OpenAI-compatible engine's streamed request names them (the repeat
        penalty aside: each engine kind names it its own way)."""
        body = {"temperature": 0.0 if self.greedy else self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens, "stream": True, "stream_options": {"include_usage": True},
                "stop": list(self.stop) or None, "seed": self.seed, "top_k": self.top_k if self.top_k > 0 else None}
        return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class Sampling:
    """Sampling settings under the engine's names; ``None`` means the engine's default.

    A converter maps its wire's names here once (v1's ``max_output_tokens`` and
    ``penalty_score``, OpenAI's ``max_completion_tokens``...).
    """

    temperature: float | None = None  # 0: greedy
    top_p: float | None = None
    top_k: int | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Sampling:
        """The sampling settings among a parsed body's ``fields``, under any protocol's names (the
        spec's one table, :data:`~qfnb.protocol.wires.chat.ranges.ENGINE_NAMES`); of two names for one setting
        (``max_tokens``, ``max_completion_tokens``) the later given wins."""
        found = {ENGINE_NAMES[wire]: value for wire, value in fields.items()
                 if value is not None and wire in ENGINE_NAMES}
        stop = found.pop("stop", ())
        return cls(stop=(stop,) if isinstance(stop, str) else tuple(stop), **found)

    def engine_params(self, default_stop: tuple[str, ...] = ()) -> GenParams:
        """These settings with the engine's defaults filled in, after the model's own stop words."""
        return GenParams(
            temperature=GenParams.temperature if self.temperature is None else float(self.temperature),
            top_p=GenParams.top_p if self.top_p is None else float(self.top_p),
            top_k=self.top_k or 0,
            repeat_penalty=1.0 if self.repeat_penalty is None else float(self.repeat_penalty),
            max_tokens=GenParams.max_tokens if self.max_tokens is None else self.max_tokens,
            stop=tuple(s for s in (*default_stop, *self.stop) if s),
            seed=self.seed,
        )

    def nth(self, i: int) -> Sampling:
        """The settings of the ``i``-th of several answers: with a seed, answer ``i`` samples with ``seed + i``."""
        return dataclasses.replace(self, seed=self.seed + i) if i and self.seed is not None else self

    def penalties(self) -> dict[str, Any]:
        """The OpenAI fields engines take as they are (frequency/presence penalties, logit bias)."""
        out: dict[str, Any] = {"frequency_penalty": self.frequency_penalty, "presence_penalty": self.presence_penalty,
                               "logit_bias": dict(self.logit_bias) if self.logit_bias is not None else None}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class ChatAsk:
    """A chat turn to answer.

    ``messages`` are OpenAI-shaped turns, the system prompt included as a ``system`` turn, tool
    calls (``assistant`` with ``tool_calls``) and results (role ``tool``) included. ``tools``:
    OpenAI function tools offered; ``tool_choice`` ``"required"`` forces a call (a converter turns
    a named choice into that one tool, required). ``schema``: a JSON schema the answer must
    follow, named ``schema_name`` (``None``: any JSON object, OpenAI's ``json_object``).
    ``logprobs``: the number of alternatives per token to report (``None``: no logprobs).
    ``n``: answers wanted (the serving flow asks the engine ``n`` times, :meth:`nth`).
    ``lane``: :data:`INTERACTIVE` or :data:`BATCH`. ``model``: the name the client asked for (the
    serving flow resolves it); ``cache_key``: keeps a conversation's turns on the engine slot
    that holds its prefix (``None``: any slot). ``reasoning_effort``: OpenAI's, for an engine
    whose model reasons (an external OpenAI-compatible one gets it; the others ignore it).
    """

    model: str
    messages: tuple[Mapping[str, Any], ...]
    sampling: Sampling = Sampling()
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None
    schema: Mapping[str, Any] | None = None
    schema_name: str | None = "answer"
    logprobs: int | None = None
    n: int = 1
    lane: str = INTERACTIVE
    cache_key: str | None = None
    reasoning_effort: str | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")

    @property
    def offered_tools(self) -> tuple[Mapping[str, Any], ...]:
        """The tools the model may call (none when ``tool_choice`` is ``"none"``)."""
        return () if self.tool_choice == "none" else self.tools

    @property
    def has_tool_turns(self) -> bool:
        """Whether the history holds tool calls or tool results."""
        return any(m.get("role") == "tool" or m.get("tool_calls") for m in self.messages)

    @property
    def plain(self) -> bool:
        """A chat of text turns only: no tools, schema, logprobs, penalties or tool turns."""
        return (not self.tools and self.schema is None and self.logprobs is None
                and not self.sampling.penalties() and not self.has_tool_turns)

    @property
    def in_tool_loop(self) -> bool:
        """Whether this turn is a tool loop's: tools offered, or tool calls or results in the history."""
        return bool(self.offered_tools) or self.has_tool_turns

    @property
    def slot_key(self) -> str | None:
        """The conversation whose engine slot this turn takes (:mod:`.lanes`): ``cache_key``, else, for
        a tool loop's turn, a digest of the loop's opening (the turns up to the first user turn, and
        the tools). Every request of a loop starts with that opening, so the slot that served the
        previous one still holds its prompt, and only the new turns are read; without it a loop's
        longer second request went to another slot and read its whole prompt again."""
        if self.cache_key is not None or not self.in_tool_loop:
            return self.cache_key
        first_user = next((i for i, m in enumerate(self.messages) if m.get("role") == "user"), 0)
        opening = json.dumps([list(self.messages[:first_user + 1]), list(self.tools)], sort_keys=True, default=str)
        return "tool-loop:" + hashlib.sha256(opening.encode("utf-8")).hexdigest()[:16]

    def engine_params(self, default_stop: tuple[str, ...] = ()) -> GenParams:
        """The sampling settings with the engine's defaults filled in; a tool loop's turn that sets no
        temperature is decoded at :data:`TOOL_TEMPERATURE` (the call, and the answer from its result)."""
        sampling = self.sampling
        if sampling.temperature is None and self.in_tool_loop:
            sampling = dataclasses.replace(sampling, temperature=TOOL_TEMPERATURE)
        return sampling.engine_params(default_stop)

    def nth(self, i: int) -> ChatAsk:
        """The ask of the ``i``-th of ``n`` answers (its own seed), itself a single answer."""
        return dataclasses.replace(self, sampling=self.sampling.nth(i), n=1)


@dataclass(frozen=True)
class TextAsk:
    """A raw continuation of ``prompt`` (no chat template)."""

    model: str
    prompt: str
    sampling: Sampling = Sampling()
    lane: str = INTERACTIVE
    n: int = 1

    def engine_params(self, default_stop: tuple[str, ...] = ()) -> GenParams:
        """The sampling settings with the engine's defaults filled in."""
        return self.sampling.engine_params(default_stop)

    def nth(self, i: int) -> TextAsk:
        return dataclasses.replace(self, sampling=self.sampling.nth(i), n=1)


Ask: TypeAlias = ChatAsk | TextAsk

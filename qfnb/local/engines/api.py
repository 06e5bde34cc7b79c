"""What the platform needs from its engines and their registry (architecture Contract 7).

An :class:`Engine` has one face, :meth:`Engine.generate` (a :class:`~.ask.ChatAsk` or
:class:`~.ask.TextAsk` in, :class:`~.base.Delta` s out), and declares what it can do
(:attr:`Engine.can_call_tools`); nothing is probed. ``qfnb.local.engines.EngineRegistry``
satisfies :class:`RegistryLike`; test doubles subclass :class:`NullRegistry`, which serves nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from qfnb.local.engines.ask import Ask, ChatAsk
from qfnb.local.engines.base import Delta, ModelSpec, UnknownModel
from qfnb.local.engines.gate import EngineBusy, Gate, run_blocking

__all__ = ["AnswerScorer", "CrossEncoderLike", "EmbedderLike", "Engine", "NullRegistry", "RegistryLike",
           "ServedLike", "answer_all", "generate_blocking"]


class ServedLike(Protocol):
    """A served model (``base.ServedModel``): its name, endpoint, API types, engine kind, digest."""

    @property
    def name(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def api_types(self) -> tuple[str, ...]: ...
    @property
    def kind(self) -> str: ...
    @property
    def digest(self) -> str: ...


class Engine(Protocol):
    """A loaded text-generation model behind its admission :class:`~.gate.Gate`."""

    name: str

    @property
    def gate(self) -> Gate: ...

    @property
    def can_call_tools(self) -> bool:
        """Whether the model has a chat template that renders tools (a base model has none)."""
        ...

    def generate(self, ask: Ask) -> AsyncIterator[Delta]:
        """The answer to ``ask``, streamed; raises ``EngineBusy`` when the gate refuses it,
        ``PromptTooLong``, or ``ValueError`` for an ask the model cannot serve. Closing the
        iterator cancels the generation."""
        ...

    def resume(self, ask: ChatAsk, text: str) -> AsyncIterator[Delta] | None:
        """The rest of ``ask``'s answer (a JSON schema constraining it) after ``text``, its start already
        sent: the turns with ``text`` opened as the reply, under the grammar of what may follow it
        (:mod:`qfnb.local.engines.loop_guard`); None where the engine cannot write that rest."""
        ...

    async def count_tokens(self, ask: Ask) -> int:
        """The prompt tokens ``ask`` would take, counted by the model's own template and tokenizer;
        raises ``CannotServe`` where the engine cannot tell."""
        ...

    async def token_logprobs(self, tokens: Sequence[int], positions: Sequence[int]) -> list[float]:
        """The log-probability the served model (its adapter applied) gives ``tokens[t]`` after
        ``tokens[:t]``, for each ``t`` in ``positions``: teacher-forced, the tokens are given, not
        generated (a held-out loss: ``qfnb.local.training.evaluate.served_loss``). Raises
        ``CannotServe`` where the engine cannot tell, ``EngineBusy`` as :meth:`generate` does."""
        ...

    async def answer_logprob(self, messages: Sequence[dict[str, str]], answer: str) -> tuple[float, int]:
        """The summed log-probability the served model gives ``answer`` as its reply to ``messages``
        (teacher-forced: how likely it finds that answer), and the answer's token count; raises as
        :meth:`token_logprobs` does. Compares a tuned model with its base on preference pairs."""
        ...


class EmbedderLike(Protocol):
    """Sentence embeddings (``gate.BatchingEmbedder``): vectors of ``texts`` and the tokens read."""

    name: str

    async def aembed(self, texts: list[str]) -> tuple[list[list[float]], int]: ...
    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]: ...


class CrossEncoderLike(Protocol):
    """A reranker scoring (query, document) pairs: each document's score and the tokens read."""

    async def ascore(self, query: str, documents: list[str]) -> tuple[list[float], int]: ...


class AnswerScorer(Protocol):
    """Answers scored in a forward pass over a model's own weights (``EngineRegistry.forward_scorer``):
    each ``(turns, answer)``'s summed log-probability as the whole reply and its token count, as
    :meth:`Engine.answer_logprob` gives them one by one (blocking: call it in a thread)."""

    name: str

    def answer_logprobs(self, items: Sequence[tuple[Sequence[dict[str, str]], str]]) -> list[tuple[float, int]]: ...


class RegistryLike(Protocol):
    """Every model the platform serves, and the engines that serve them. The bodies here serve no
    model and have no store: :class:`NullRegistry` is this protocol as a class."""

    #: the model store behind ``qfnb model add`` (None: this registry has none)
    store: Any = None

    def served_models(self) -> Sequence[ServedLike]:
        return []

    def spec_of(self, name: str) -> ModelSpec | None:
        return None

    def chat(self, endpoint: str) -> Engine:
        raise _unknown(self, "chat", endpoint)

    def ready_chat(self, endpoint: str) -> Engine | None:
        """What :meth:`chat` gives, if that needs no blocking step (None: call :meth:`chat` in a thread)."""
        return None

    def generation(self) -> int | None:
        """A count that moves whenever what is served changes (None: not known without a blocking step)."""
        return None

    def embedder(self, endpoint: str) -> EmbedderLike:
        raise _unknown(self, "embeddings", endpoint)

    def cross_encoder(self, endpoint: str) -> CrossEncoderLike:
        raise ValueError(f"{endpoint} is not a cross-encoder; it ranks by embeddings")

    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path,
                         siblings: Sequence[Path] = ()) -> ServedLike:
        raise ValueError(f"this platform cannot serve adapters (asked for {endpoint})")

    def engine_states(self) -> list[dict[str, Any]]:
        return []

    def forward_scorer(self, endpoint: str) -> AnswerScorer | None:
        """What scores the answers of the model at ``endpoint`` in a forward pass over its transformers weights
        and adapter (None: the platform has no such weights of it; its engine scores them)."""
        return None

    def reload_store(self) -> None:
        return None

    def unload(self, name: str) -> bool:
        return False

    def base_gguf(self, base_model: str) -> Path | None:
        return None

    def train_path(self, name: str) -> Path | None:
        return None

    def weights_of(self, name: str) -> Path | None:
        return None

    def training_problem(self, path: Path) -> str | None:
        return None

    def close(self) -> None:
        return None


class NullRegistry(RegistryLike):
    """A :class:`RegistryLike` that serves no model and has no store: the base of test doubles,
    which override what they serve."""


def _unknown(registry: RegistryLike, api_type: str, endpoint: str) -> UnknownModel:
    return UnknownModel(api_type, endpoint, [m.name for m in registry.served_models() if api_type in m.api_types])


def generate_blocking(engine: Engine, ask: Ask) -> list[Delta]:
    """The whole answer to ``ask``, for callers on plain threads (evaluations, scripts)."""
    return run_blocking(lambda: _collect(engine.generate(ask)))


async def _collect(deltas: AsyncIterator[Delta]) -> list[Delta]:
    return [d async for d in deltas]


async def answer_all(engine: Engine, asks: Sequence[ChatAsk]) -> list[str]:
    """The answers to ``asks``, as many at once as the engine has slots, waiting (not failing)
    while the engine is busy with other users."""
    limit = asyncio.Semaphore(engine.gate.slots)

    async def one(ask: ChatAsk) -> str:
        async with limit:
            while True:
                try:
                    return "".join([d.text async for d in engine.generate(ask)]).strip()
                except EngineBusy as exc:
                    await asyncio.sleep(exc.retry_after)

    return list(await asyncio.gather(*(one(a) for a in asks)))

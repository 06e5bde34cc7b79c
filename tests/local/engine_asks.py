"""Asks for engine tests: a chat or a prompt with sampling under the engine's names, answered
whole on a plain thread (:func:`qfnb.local.engines.api.generate_blocking`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qfnb.local.engines.api import Engine, generate_blocking
from qfnb.local.engines.ask import ChatAsk, Sampling, TextAsk
from qfnb.local.engines.base import Delta


def chat_ask(messages: Sequence[Mapping[str, Any]], system: str | None = None, **sampling: Any) -> ChatAsk:
    turns = ({"role": "system", "content": system},) if system else ()
    stop = tuple(sampling.pop("stop", ()))
    return ChatAsk(model="", messages=(*turns, *messages), sampling=Sampling(stop=stop, **sampling))


def text_ask(prompt: str, **sampling: Any) -> TextAsk:
    stop = tuple(sampling.pop("stop", ()))
    return TextAsk(model="", prompt=prompt, sampling=Sampling(stop=stop, **sampling))


def chat(engine: Engine, messages: Sequence[Mapping[str, Any]], system: str | None = None,
         **sampling: Any) -> list[Delta]:
    """The whole answer of ``engine`` to ``messages``."""
    return generate_blocking(engine, chat_ask(messages, system, **sampling))


def complete(engine: Engine, prompt: str, **sampling: Any) -> list[Delta]:
    """The whole continuation of ``prompt``."""
    return generate_blocking(engine, text_ask(prompt, **sampling))

"""The forced text of :mod:`bench.jump_forward` against llama.cpp's own grammar
(marked ``real_model``): a greedy answer of the 0.5B chat model under a schema, decoded by the
engine's grammar, is one our grammar admits, and every character ours calls forced is the one the
engine wrote."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.jump_forward import Forced
from qfnb.local.engines import DEFAULT_CHAT
from qfnb.local.engines.api import generate_blocking
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry

pytestmark = [pytest.mark.real_model, pytest.mark.slow,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

MEMBER = {"type": "object", "required": ["name", "role", "remote"], "properties": {
    "name": {"type": "string"}, "role": {"enum": ["lead", "engineer"]}, "remote": {"type": "boolean"}}}


@pytest.fixture()
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRegistry]:
    reg = EngineRegistry(tmp_path_factory.mktemp("jump"), options=EngineOptions(slots=1, idle_seconds=600))
    yield reg
    reg.close()


def test_the_engines_greedy_answer_agrees_with_every_forced_character(registry: EngineRegistry) -> None:
    ask = ChatAsk(model="", messages=({"role": "user", "content": "One engineer of a team, as JSON."},),
                  schema=MEMBER, sampling=Sampling(temperature=0.0, max_tokens=48))
    text = "".join(d.text for d in generate_blocking(registry.chat(DEFAULT_CHAT), ask))
    forced = Forced(MEMBER)
    agreed = 0
    for c in text:
        expected = forced.next_forced()
        assert expected in (None, c), f"forced {expected!r} where the engine wrote {c!r}: {text!r}"
        agreed += expected == c
        forced.feed(c)
        assert not forced.lost, f"our grammar does not admit the engine's answer: {text!r}"
    assert forced.next_forced() is None  # the answer is whole
    assert agreed >= len('name"role"remote"')  # the keys at least

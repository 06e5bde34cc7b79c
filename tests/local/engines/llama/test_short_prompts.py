"""A short text goes to ``/completions`` as it is: a token is at least one UTF-8 byte, so a text of at
most ``SHORT_PROMPT_BYTES`` bytes is a short prompt, and one that leaves its answer's room fits; the
engine tokenizes it as ``/tokenize`` would (the same tokens), one round trip less before the first
token. Anything else is tokenized first, as before (the count decides the context and the slot)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.llama import prompts
from tests.fakes.prompt_engine import prompt_engine


@pytest.fixture()
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the engine double was asked (a template renders the turns' contents; a token a word)."""
    return prompt_engine(monkeypatch)


def _prepare(source: Any, room: int | None) -> prompts.Prompt:
    prompt, _opener = asyncio.run(prompts.prepare("http://127.0.0.1:1/v1", {}, source, room=room))
    return prompt


def test_a_short_text_goes_as_it_is(sent: list[str]) -> None:
    assert _prepare("Round 1: write a binary search tree", room=1024) == "Round 1: write a binary search tree"
    assert _prepare([{"role": "user", "content": "hi"}], room=1024) == "<|user|>hi<|assistant|>"
    assert sent == ["/apply-template"]  # rendered, never tokenized


def test_a_longer_text_a_full_context_or_a_count_is_tokenized(sent: list[str]) -> None:
    limit = prompts.SHORT_PROMPT_BYTES
    assert _prepare("x" * limit, room=1024) == "x" * limit
    assert _prepare("x" * (limit + 1), room=1024) == [1, 2, 3]
    # bytes, not characters: 85 three-byte characters are 255 bytes
    assert _prepare("你" * (limit // 3), room=1024) == "你" * (limit // 3)
    assert _prepare("你" * (limit // 3 + 1), room=1024) == [1, 2, 3]
    text = "a short prompt"
    assert _prepare(text, room=len(text) + prompts.ADDED_TOKENS - 1) == [1, 2, 3]  # its answer might not fit
    assert _prepare(text, room=None) == [1, 2, 3]  # asked for its count (count_tokens)
    assert sent == ["/tokenize"] * 4


def test_a_text_fits_by_its_most_tokens() -> None:
    body: dict[str, Any] = {"max_tokens": 100}
    prompts.fit("m", "abc", 4096, body)
    assert body["max_tokens"] == 100 and not prompts.is_long("x" * prompts.SHORT_PROMPT_BYTES)
    prompts.fit("m", "abc", 50, body)  # never more than the context leaves beside its most tokens
    assert body["max_tokens"] == 50 - 3 - prompts.ADDED_TOKENS
    with pytest.raises(PromptTooLong, match="the prompt is up to 5 tokens; m has a context of 5 tokens"):
        prompts.fit("m", "abc", 5, body)
    assert prompts.is_long(list(range(prompts.LONG_PROMPT_TOKENS + 1)))

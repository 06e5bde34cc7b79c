"""The request caps (``qfnb.protocol.limits``) are refused by the client before anything is sent,
with a ValidationError naming the field, quickly (no quadratic work on a long history)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from qfnb import ChatCompletion, Completion, Embedding
from qfnb._core.config import Config
from qfnb.errors import ValidationError
from qfnb.protocol import limits
from qfnb.resources.inference.chat import truncate_messages
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_server", "make_config"]

MakeConfig = Callable[..., Config]


def history(n: int, content: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": content} for i in range(n)]


BIG = "x" * (limits.MAX_PROMPT_CHARS + 1)


@pytest.mark.parametrize(("make", "kwargs", "field"), [
    (lambda c: ChatCompletion(config=c), {"messages": history(10_001)}, "messages"),
    (lambda c: ChatCompletion(config=c), {"messages": [{"role": "user", "content": BIG}]}, "messages"),
    (lambda c: ChatCompletion(config=c), {"messages": history(1), "system": BIG}, "messages"),
    (lambda c: ChatCompletion(version=2, config=c), {"messages": history(limits.MAX_MESSAGES + 1)}, "messages"),
    (lambda c: ChatCompletion(config=c), {"messages": history(1), "max_output_tokens": 10**12}, "max_output_tokens"),
    (lambda c: Completion(config=c), {"prompt": BIG}, "prompt"),
    (lambda c: Embedding(config=c), {"texts": ["a"] * (limits.MAX_EMBEDDING_TEXTS + 1)}, "texts"),
    (lambda c: Embedding(config=c), {"texts": ["y" * (limits.MAX_EMBEDDING_CHARS + 1)]}, "texts[0]"),
])
def test_oversize_input_is_refused_before_sending(fake: FakeQianfan, make_config: MakeConfig,
                                                  make: Callable[[Config], Any], kwargs: dict[str, Any],
                                                  field: str) -> None:
    resource = make(make_config("both"))
    started = time.perf_counter()
    with pytest.raises(ValidationError) as info:
        resource.do(**kwargs)
    assert str(info.value).startswith(field), info.value
    assert time.perf_counter() - started < 2.0
    assert fake.calls("/chat/") == [] and fake.calls("/embeddings/") == [] and fake.calls("/completions/") == []


def test_the_caps_are_inclusive(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("both"))
    assert chat.do(messages=history(limits.MAX_MESSAGES - 1)).result
    assert Embedding(config=make_config("both")).do(texts=["y" * limits.MAX_EMBEDDING_CHARS]).body["data"]


def test_truncating_a_long_history_is_linear() -> None:
    msgs = history(20_001, "word " * 20)
    started = time.perf_counter()
    kept = truncate_messages(msgs, 2000, None)
    assert time.perf_counter() - started < 1.0  # was quadratic: minutes for this history
    assert len(kept) % 2 == 1 and sum(len(m["content"]) for m in kept) <= 2000
    assert truncate_messages(msgs, None, None) == msgs

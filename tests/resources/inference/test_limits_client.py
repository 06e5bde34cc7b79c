"""The request caps (``qfnb.protocol.limits``) are refused by the client before anything is sent,
with a ValidationError naming the field; trimming a long history does linear work (counted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qfnb import ChatCompletion, Completion, Embedding
from qfnb._core.config import Config
from qfnb.errors import ValidationError
from qfnb.protocol import limits
from qfnb.resources.inference import chat as chat_module
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
    with pytest.raises(ValidationError) as info:
        resource.do(**kwargs)
    assert str(info.value).startswith(field), info.value
    assert fake.calls("/chat/") == [] and fake.calls("/embeddings/") == [] and fake.calls("/completions/") == []


def test_the_caps_are_inclusive(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("both"))
    assert chat.do(messages=history(limits.MAX_MESSAGES - 1)).result
    assert Embedding(config=make_config("both")).do(texts=["y" * limits.MAX_EMBEDDING_CHARS]).body["data"]


class _Counted(dict[str, str]):
    """A message that counts how often its content is read."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        _Counted.reads += 1
        return super().get(key, default)


def test_truncating_a_long_history_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    estimates = 0
    real = chat_module.estimate_tokens

    def counting(text: str) -> int:
        nonlocal estimates
        estimates += 1
        return real(text)

    monkeypatch.setattr(chat_module, "estimate_tokens", counting)
    n = 20_001
    msgs: list[dict[str, Any]] = [_Counted(m) for m in history(n, "word " * 20)]
    _Counted.reads = 0
    kept = truncate_messages(msgs, 2000, None)
    # each message is read and estimated once, however many pairs are dropped (was quadratic:
    # minutes for this history)
    assert _Counted.reads == n and estimates == n + 1
    assert len(kept) % 2 == 1 and sum(len(m["content"]) for m in kept) <= 2000
    assert truncate_messages(msgs, None, None) == msgs

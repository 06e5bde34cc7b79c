"""Preparing a prompt (apply the chat template, tokenize) survives a connection the engine had just
closed: llama-server drops an idle keep-alive connection after 5 s, and a request sent on it at that
moment fails with ``RemoteProtocolError``. Both calls are idempotent, so the second try is sent once;
a second failure is the engine's, and is raised."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from qfnb.local.engines.llama import prompts
from tests.fakes.prompt_engine import prompt_engine


def _prepare(source: Any) -> list[int]:
    tokens, _opener = asyncio.run(prompts.prepare("http://127.0.0.1:1/v1", {}, source))
    return tokens


def test_a_dropped_connection_is_tried_again_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = prompt_engine(monkeypatch, drops=1)
    assert _prepare([{"role": "user", "content": "hi"}]) == [1, 2, 3]
    assert sent == ["/apply-template", "/apply-template", "/tokenize"]


def test_a_second_drop_is_the_engines_and_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = prompt_engine(monkeypatch, drops=2)
    with pytest.raises(httpx.RemoteProtocolError):
        _prepare("a text prompt")
    assert sent == ["/tokenize", "/tokenize"]

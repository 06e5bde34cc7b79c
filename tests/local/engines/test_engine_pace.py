"""A stream's pace, kept by the engine where it can (our build: scripts/llama_server_stream_pace.patch), else
by the engine link's reader; against llama-server's double (``fake_llama_server.py``, ``FAKE_DECODE=1``),
patched or not (``FAKE_PATCHED``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_asks import text_ask
from fake_engine import fake_engine

from qfnb.local.engines.base import Delta
from qfnb.local.engines.gate import run_blocking
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.process.server import LlamaServer


def _engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, patched: bool,
            interval: float) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    monkeypatch.setenv("FAKE_DECODE", "1")
    monkeypatch.setenv("FAKE_TOKEN_SECONDS", "0.01")
    if patched:
        monkeypatch.setenv("FAKE_PATCHED", "1")
    else:
        monkeypatch.delenv("FAKE_PATCHED", raising=False)
    with fake_engine(tmp_path, 2, stream_interval=interval) as made:
        yield made


@pytest.fixture()
def patched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    # an interval no machine reaches between three 10 ms tokens: the pieces are the count's
    yield from _engine(tmp_path, monkeypatch, patched=True, interval=5.0)


@pytest.fixture()
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    yield from _engine(tmp_path, monkeypatch, patched=False, interval=5.0)


async def _answer(chat: LlamaEngine, max_tokens: int) -> list[Delta]:
    return [delta async for delta in chat.generate(text_ask("tell me", max_tokens=max_tokens))]


def test_an_engine_that_paces_sends_the_first_token_then_three_a_piece_and_the_link_takes_each_as_it_comes(
        patched: tuple[LlamaEngine, LlamaServer]) -> None:
    chat, server = patched
    deltas = run_blocking(lambda: _answer(chat, 12))
    assert server.paces_streams
    texts = [d for d in deltas if d.text]
    # one Delta per engine chunk: the reader did not hold them on top (it would join several)
    assert [d.text.count(" w") for d in texts] == [1, 3, 3, 3, 2]
    assert [d.completion_tokens for d in texts] == [1, 4, 7, 10, 12]  # counted from the chunks' predicted_n
    assert "".join(d.text for d in deltas) == "".join(f" w{i}" for i in range(12))
    assert deltas[-1].completion_tokens == 12 and deltas[-1].finish_reason is not None


def test_an_engine_without_the_pace_gets_no_pace_fields_and_the_link_reads_at_the_pace_itself(
        upstream: tuple[LlamaEngine, LlamaServer]) -> None:
    chat, server = upstream
    deltas = run_blocking(lambda: _answer(chat, 24))
    assert not server.paces_streams
    texts = [d for d in deltas if d.text]
    assert texts[0].text == " w0" and texts[0].completion_tokens == 1  # the first token at once
    assert len(texts) < 24  # the engine sent one event a token; the reader joined them
    assert "".join(d.text for d in deltas) == "".join(f" w{i}" for i in range(24))
    assert deltas[-1].completion_tokens == 24

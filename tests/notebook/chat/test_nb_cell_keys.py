"""A re-run ``%%qfchat`` cell attaches to its own unfinished work on the local platform: its call's
``Idempotency-Key`` is made of the kernel, the cell's place in its session and the request, so the
cell run again after the kernel gave up (a timeout) gets the answer the platform went on generating,
with no second engine call. A run whose answer came in full, ``--fresh``, or another prompt or
sampling is a new call (a slow engine double: silent for ``FIRST_S``, then a word each ``WORD_S``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.errors import TimeoutError
from qfnb._core.record import cache
from qfnb._core.runtime import sync
from qfnb.local.engines.ask import Sampling
from qfnb.notebook.chat.answer import CellChatRequest, ChatDelta, ResourcesBackend
from qfnb.notebook.chat.cell_keys import CellKeys
from qfnb.notebook.errors import QfnbCellError
from tests.fakes.local_platform import ServedPlatform, served_platform
from tests.local.platform_doubles import FakeChat, FakeDelta, FakeRegistry

#: the engine's silence before its first word, its pace after, and the client's timeout (silence)
FIRST_S, WORD_S, TIMEOUT_S = 1.2, 0.05, 0.6
PROMPT = "tell me three things"


class SlowStart(FakeChat):
    """Silent for ``FIRST_S`` (a long prefill), then a word each ``WORD_S``; ``said``: words so far."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.said = 0

    def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
        self.said = 0
        time.sleep(FIRST_S)
        for delta in super()._words(text, sampling):
            time.sleep(WORD_S)
            self.said += 1
            yield delta


class SlowRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return SlowStart(tag)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    """The platform on the slow double, as the kernel's default backend; the client gives up after
    ``TIMEOUT_S`` of silence, with no retry of its own; no response cache (each call reaches the platform)."""
    with served_platform(tmp_path / "platform", registry=SlowRegistry(), heartbeat=0) as platform:
        platform.as_default_backend(monkeypatch)
        monkeypatch.setenv("QIANFAN_LLM_API_RETRY_TIMEOUT", str(TIMEOUT_S))
        monkeypatch.setenv("QIANFAN_LLM_API_RETRY_COUNT", "1")
        before = cache.set_process_mode("off")
        try:
            yield platform
        finally:
            cache.set_process_mode(before)


def _engine(served: ServedPlatform) -> SlowStart:
    engine = served.registry.engines["tiny-chat"]
    assert isinstance(engine, SlowStart)
    return engine


def _generating(served: ServedPlatform) -> None:
    """Wait until the platform's engine, on the newest call (abandoned), has said a word (a hang guard)."""
    deadline = time.monotonic() + 30
    while ("tiny-chat" not in served.registry.engines or _engine(served).said < 1) and time.monotonic() < deadline:
        time.sleep(0.05)


def _text(backend: ResourcesBackend, request: CellChatRequest) -> str:
    async def read() -> list[ChatDelta]:
        return [d async for d in backend.stream(request)]

    return "".join(d.text for d in sync.run(read()))


@pytest.mark.usefixtures("own_record_dir")
def test_the_same_cell_run_again_attaches_and_one_answered_in_full_asks_anew(served: ServedPlatform) -> None:
    backend = ResourcesBackend()
    request = CellChatRequest(messages=[{"role": "user", "content": PROMPT}], model="Tiny-Chat", session="default")
    with pytest.raises(TimeoutError):  # the kernel gives up; the platform goes on (QFNB_RETRY_GRACE_S)
        _text(backend, request)
    _generating(served)
    assert _text(backend, request) == f"tiny-chat: {PROMPT}"  # attached: the whole answer
    assert len(_engine(served).calls) == 1

    with pytest.raises(TimeoutError):  # answered in full before: a new call (a new sample), silent at first
        _text(backend, request)
    assert len(_engine(served).calls) == 2  # (--fresh makes a new key too: the test of CellKeys below)


def test_a_cells_key_is_its_kernel_place_and_request() -> None:
    keys, other_kernel = CellKeys(), CellKeys()
    ask = {"messages": [{"role": "user", "content": "hi"}], "sampling": {"temperature": 0.9}}
    first = keys.identity(session="default", place=2, request=ask)
    assert keys.identity(session="default", place=2, request=dict(ask)) == first
    assert len({first, keys.identity(session="default", place=3, request=ask),
                keys.identity(session="s2", place=2, request=ask),
                keys.identity(session="default", place=2, request={**ask, "sampling": {"temperature": 0.8}}),
                other_kernel.identity(session="default", place=2, request=ask)}) == 5
    key = keys.key(first)
    with pytest.raises(TimeoutError), keys.run(first):  # given up on: the same key for the next run
        raise TimeoutError("no byte for 300 s")
    assert keys.key(first) == key and len(key) <= 255 and key.isascii()
    with keys.run(first):  # answered in full: the next run is a new call
        pass
    answered = keys.key(first)
    with pytest.raises(KeyboardInterrupt), keys.run(first):  # stopped by its user (Interrupt): a new call too
        raise KeyboardInterrupt
    stopped = keys.key(first)
    assert len({key, answered, stopped, keys.key(first, fresh=True)}) == 4  # --fresh: a new key each time


@pytest.mark.parametrize("session", ["", "-s talk "], ids=["kernel-session", "platform-session"])
def test_a_rerun_cell_shows_the_answer_its_first_run_left_generating(ip: Any, served: ServedPlatform,
                                                                     session: str) -> None:
    magics = ip.magics_manager.registry["QfnbMagics"]
    magics.update_interval = 0.05
    with pytest.raises(QfnbCellError, match="timed out"):
        ip.run_cell_magic("qfchat", f"{session}-o first", PROMPT)
    _generating(served)
    ip.run_cell_magic("qfchat", f"{session}-o again", PROMPT)
    assert str(ip.user_ns["again"]) == f"tiny-chat: {PROMPT}" and len(_engine(served).calls) == 1


@pytest.mark.usefixtures("own_record_dir")
def test_the_cell_s_sampling_options_reach_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``%%qfchat -t 0.5 --top-k 3 --max-tokens 2``: the cell's typed options go to ``ado(sampling=...)``
    whole, and the platform's engine samples with each of them."""
    from qfnb.notebook.sampling import SamplingOptions

    with served_platform(tmp_path / "platform", registry=FakeRegistry(), heartbeat=0) as platform:
        platform.as_default_backend(monkeypatch)
        options = SamplingOptions(temperature=0.5, top_k=3, max_output_tokens=2)
        request = CellChatRequest(messages=[{"role": "user", "content": "one two three"}], model="Tiny-Chat",
                                  session="default", sampling=options)
        assert _text(ResourcesBackend(), request) == "tiny-chat: one"  # two tokens: the cap reached the engine
        (call,) = platform.registry.engines["tiny-chat"].calls
        sampling = call["sampling"]
        assert (sampling.temperature, sampling.top_k, sampling.max_tokens) == (0.5, 3, 2)

"""Engine doubles for batch-inference tests (never used by the product).

:class:`PacedChat` is an async engine behind a real :class:`Gate`: it runs at most ``slots``
requests at once (others wait, as llama-server's queue does), answers ``"<tag>: <last user
message>"`` one word per ``delay`` seconds, notes every request it starts (and appends it to
``$QFNB_TEST_REQUEST_LOG`` if set, so a test can count requests across daemon restarts), and
can be made to fail like a crashed or rate-limited engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines.ask import Ask, TextAsk
from qfnb.local.engines.base import Delta, reached
from qfnb.local.engines.gate import EngineBusy, Gate
from qfnb.local.engines.llama.process.server import EngineUnavailable
from tests.fakes.local_platform import ServedPlatform, served_platform
from tests.local.platform_doubles import FakeRegistry


class PacedChat:
    can_call_tools = False

    def __init__(self, name: str, *, slots: int = 4, queue: int = 16, delay: float = 0.02) -> None:
        self.name, self.gate, self.delay = name, Gate(name, slots, queue), delay
        self.started: list[str] = []          # every request's last user message, in start order
        self.events: list[tuple[str, str]] = []  # ("start"/"end"/"cancel", message) in order
        self.failures: dict[str, list[Exception]] = {}  # message -> errors to raise first, one per attempt
        self.slots = slots
        self.active = self.peak = self.max_admitted = 0
        self._lock = threading.Lock()

    def generate(self, ask: Ask) -> AsyncIterator[Delta]:
        return self._answer(ask.prompt if isinstance(ask, TextAsk) else ask.messages[-1]["content"])

    async def count_tokens(self, ask: Ask) -> int:
        """A prompt's tokens as its answers report them: the last message's words."""
        return len((ask.prompt if isinstance(ask, TextAsk) else ask.messages[-1]["content"]).split())

    def _take_slot(self) -> bool:
        with self._lock:
            if self.active >= self.slots:
                return False
            self.active += 1
            self.peak = max(self.peak, self.active)
            return True

    async def _answer(self, text: str) -> AsyncIterator[Delta]:
        with self.gate.admit():
            self.max_admitted = max(self.max_admitted, self.gate.admitted)
            pending = self.failures.get(text)
            if pending:
                raise pending.pop(0)
            self.events.append(("queued", text))
            try:
                while not self._take_slot():  # a slot frees when a request ends or is cancelled
                    await asyncio.sleep(0.001)
            except (asyncio.CancelledError, GeneratorExit):
                self.events.append(("cancel", text))
                raise
            self.started.append(text)
            self.events.append(("start", text))
            reached()  # as an engine does once it has the request
            log = os.environ.get("QFNB_TEST_REQUEST_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(text + "\n")
            words = f"{self.name}: {text}".split(" ")
            try:
                for i, word in enumerate(words):
                    await asyncio.sleep(self.delay)
                    last = i == len(words) - 1
                    yield Delta(word if i == 0 else " " + word, "normal" if last else None, len(text.split()), i + 1)
                self.events.append(("end", text))
            except (asyncio.CancelledError, GeneratorExit):
                self.events.append(("cancel", text))
                raise
            finally:
                with self._lock:
                    self.active -= 1


def crash(text: str) -> EngineUnavailable:
    return EngineUnavailable(f"paced: the engine crashed answering {text!r}")


def busy() -> EngineBusy:
    return EngineBusy("paced", 1, retry_after=0.0)


class PacedRegistry(FakeRegistry):
    """The platform doubles' models, with paced async chat engines (``$QFNB_TEST_DELAY`` seconds a word)."""

    def __init__(self, slots: int = 4) -> None:
        super().__init__()
        self.slots = slots
        self.paced: dict[str, PacedChat] = {}

    def chat(self, endpoint: str) -> PacedChat:  # type: ignore[override]
        if endpoint not in self.paced:
            delay = float(os.environ.get("QFNB_TEST_DELAY", "0.02"))
            self.paced[endpoint] = PacedChat(endpoint, slots=self.slots, delay=delay)
        return self.paced[endpoint]


@contextlib.contextmanager
def paced_platform(data_dir: Path, monkeypatch: pytest.MonkeyPatch, *, delay: str, slots: int = 2,
                   **settings: Any) -> Iterator[ServedPlatform]:
    """The platform on ``data_dir`` answering with a :class:`PacedRegistry`: ``slots`` requests at
    once, a word every ``delay`` seconds (``QFNB_TEST_DELAY``); ``settings`` go to its ``Settings``."""
    monkeypatch.setenv("QFNB_TEST_DELAY", delay)
    with served_platform(data_dir, registry=PacedRegistry(slots=slots), **settings) as platform:
        yield platform

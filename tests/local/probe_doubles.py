"""Test doubles for issue 26's daemon tests: a chat model that takes its time, like a real engine.

``SlowRegistry`` is :class:`FakeRegistry` whose chat answers take ``DELAY`` seconds per word, and
``WAIT`` seconds before the first word of a message starting with ``slow``, so a daemon can be
killed while a batch or a stream is under way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from qfnb.local.engines.ask import Sampling
from tests.local.platform_doubles import FakeChat, FakeDelta, FakeRegistry

DELAY = 0.004
WAIT = 2.0


class SlowChat(FakeChat):
    def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
        if text.startswith("slow"):
            time.sleep(WAIT)
        for delta in super()._words(text, sampling):
            time.sleep(DELAY)
            yield delta


class SlowRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return SlowChat(tag)

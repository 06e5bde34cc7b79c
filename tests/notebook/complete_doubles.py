"""An engine double for inline completions (never used by the product): ``Fake-Coder`` fills in the
middle from what it is given, so a test sees that the notebook's context reached the engine.

It answers after a short think: a prefix ending in ``NAME[`` gets the first column the kernel's
names chunk lists for ``NAME`` (``'city']``); a line holding ``html`` gets markup (``'<b>x</b>'``);
any other prefix gets ``total = 0``. A prefix holding ``slow`` streams one token a second for a
minute (a request to withdraw)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from qfnb.local.engines.api import Engine
from qfnb.local.engines.base import Delta
from qfnb.local.engines.llama.infill import InfillAsk
from tests.local.platform_doubles import FakeRegistry, FakeServed

CODER = "Fake-Coder"
_SUBSCRIPT = re.compile(r"([A-Za-z_]\w*)\[$")


def _columns(chunks: tuple[tuple[str, str], ...], name: str) -> list[str]:
    for _, text in chunks:
        for line in text.splitlines():
            if line.startswith(f"# {name}: DataFrame") and "columns:" in line:
                return re.findall(r"'([^']*)'", line.split("columns:", 1)[1])
    return []


class FakeCoder:
    """The double's engine face: :meth:`infill` as the llama engine has it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def infill(self, ask: InfillAsk) -> AsyncIterator[Delta]:
        return self._answer(ask)

    async def _answer(self, ask: InfillAsk) -> AsyncIterator[Delta]:
        prompt = len(ask.prefix.split()) + sum(len(t.split()) for _, t in ask.extra)
        line = ask.prefix.rsplit("\n", 1)[-1]
        if "slow" in line:
            for i in range(60):
                await asyncio.sleep(1.0)
                yield Delta("x", None, prompt, i + 1)
            yield Delta("", "normal", prompt, 60)
            return
        await asyncio.sleep(0.05)
        found = _SUBSCRIPT.search(ask.prefix)
        columns = _columns(ask.extra, found.group(1)) if found else []
        text = f"'{columns[0]}']" if columns else "'<b>bold</b><img src=x>'" if "html" in line else "total = 0"
        yield Delta(text, None, prompt, 1)
        yield Delta("", "normal", prompt, 2)


class FakeCoderRegistry(FakeRegistry):
    """:class:`FakeRegistry` with ``Fake-Coder``, a completions model that fills in the middle."""

    def __init__(self) -> None:
        super().__init__()
        self.models.append(FakeServed(CODER, "fake-coder", ("chat", "completions"), "llama.cpp"))
        self._coder = FakeCoder(CODER)

    def chat(self, endpoint: str) -> Engine:
        if endpoint == "fake-coder":
            return self._coder  # type: ignore[return-value]
        return super().chat(endpoint)

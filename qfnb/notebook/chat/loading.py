"""What the chat footer says while no token has come: is the model loading?

The local platform's daemon reports its engines (``GET /qfnb/status`` → ``engines``: model,
endpoint, state ``starting | ready | stopped | failed``, since). While an answer waits for its
first token, a watcher task on qfnb's loop (:mod:`qfnb.notebook.chat.runner`) asks about
once a second (one short request, never raising)
and marks the answer ``loading`` while its engine is starting, so the footer says
"loading Qwen2.5-Coder-0.5B-Instruct · 4 s" instead of a bare wait. A backend whose
``engine_state`` knows none (the cloud, test doubles: None) leaves the footer as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from qfnb._core.backend import daemon
from qfnb._core.backend.daemon import EngineState

log = logging.getLogger("qfnb.notebook.chat.loading")

#: seconds before the first look (a loaded model usually answers sooner) and between looks
FIRST_LOOK = 0.5
INTERVAL = 1.0


def match_engine(engines: Sequence[EngineState], names: Iterable[str | None]) -> EngineState | None:
    """The engine serving one of ``names`` (model name or endpoint, any case).

    A name the platform serves under another model (``ERNIE-Bot`` answered by Qwen) matches
    nothing; then the one engine that is starting, if exactly one is, is the likely wait."""
    wanted = {n.lower() for n in names if n}
    for engine in engines:
        if engine.model.lower() in wanted or (engine.endpoint and engine.endpoint.lower() in wanted):
            return engine
    starting = [e for e in engines if e.state == "starting"]
    return starting[0] if len(starting) == 1 else None


def local_engine_state(names: Iterable[str | None]) -> EngineState | None:
    """The local daemon's engine for ``names``, when this process uses the daemon (else None)."""
    if not daemon.in_use():
        return None
    engines = daemon.engine_states()
    return match_engine(engines, names) if engines else None

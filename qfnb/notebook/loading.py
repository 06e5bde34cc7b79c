"""What the chat footer says while no token has come: is the model loading?

The local platform's daemon reports its engines (``GET /qfnb/status`` → ``engines``: model,
endpoint, state ``starting | ready | stopped | failed``, since). While an answer waits for its
first token, a watcher thread asks about once a second (one short request, never raising)
and marks the answer ``loading`` while its engine is starting, so the footer says
"loading Qwen2.5-Coder-0.5B-Instruct · 4 s" instead of a bare wait. A backend without
``engine_state`` (the cloud, test doubles) leaves the footer as it was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from qfnb._core.backend.daemon import EngineState

log = logging.getLogger("qfnb.notebook.loading")

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
    from qfnb._core.backend import daemon

    if not daemon.in_use():
        return None
    engines = daemon.engine_states()
    return match_engine(engines, names) if engines else None


def watch(
    probe: Callable[[Any, str], EngineState | None],
    requests: Sequence[Any],
    answers: Sequence[Any],
    changed: threading.Event,
    stop: threading.Event,
    *,
    first: float = FIRST_LOOK,
    interval: float = INTERVAL,
) -> threading.Thread:
    """Start a daemon thread setting ``answer.engine`` while answers wait for their first token."""

    def waiting() -> list[int]:
        return [i for i, a in enumerate(answers) if not a.done and not a.text]

    def run() -> None:
        delay = first
        while not stop.wait(delay) and (pending := waiting()):
            delay = interval
            for i in pending:
                try:
                    state = probe(requests[i], answers[i].model)
                except Exception:  # the footer is a nicety: never break the chat
                    log.debug("engine status probe failed", exc_info=True)
                    state = None
                if state != answers[i].engine:
                    answers[i].engine = state
                    changed.set()

    thread = threading.Thread(target=run, name="qfchat-loading", daemon=True)
    thread.start()
    return thread

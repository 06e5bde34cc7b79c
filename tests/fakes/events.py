"""``RecordingHandler``: a trainer event handler that keeps every event it is sent (and the
threads they came from)."""

from __future__ import annotations

import threading

from qfnb.trainer import Event, EventHandler


class RecordingHandler(EventHandler):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: set[str] = set()

    def dispatch(self, event: Event) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)

    def trail(self) -> list[tuple[str, str]]:
        """``(action class, state)`` of each event, in order."""
        return [(e.action_class, e.action_state.value) for e in self.events]

    def states(self, action_id: str) -> list[str]:
        """The states one action went through, in order."""
        return [e.action_state.value for e in self.events if e.action_id == action_id]

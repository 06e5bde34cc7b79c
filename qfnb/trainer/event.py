"""Trainer events (Contract 5) and the handler hook."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .consts import ActionState

logger = logging.getLogger("qfnb.trainer")


@dataclass(frozen=True)
class Event:
    """One step of an action: ``data`` is the action's payload (task detail while training)."""

    action_class: str
    action_id: str
    action_state: ActionState
    description: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class EventHandler:
    """Subclass and override :meth:`dispatch`. Called on qfnb's background loop thread:
    keep it cheap, never block, and marshal to widgets (ipywidgets traits are thread-safe)."""

    def dispatch(self, event: Event) -> None:
        """Receive one event."""


def dispatch_event(handler: EventHandler | None, event: Event) -> None:
    """Deliver ``event``; a failing handler is logged, never allowed to break the pipeline."""
    if handler is None:
        return
    try:
        handler.dispatch(event)
    except Exception:
        logger.exception("event handler %r failed on %s/%s", handler, event.action_class,
                         event.action_state)

"""Trainer events (Contract 5) and the handler hook, with the official SDK's signatures."""

from __future__ import annotations

import logging
from typing import Any

from .consts import ActionState

logger = logging.getLogger("qfnb.trainer")


class Event:
    """One step of an action: ``Event(action_id, state, description=None, data=None)``.

    As the official SDK: ``action_id``, ``action_state``, ``description``, ``data``. qfnb adds
    ``action_class`` (the action's class name, e.g. ``"TrainAction"``; keyword only); while
    training, ``data`` is the task-detail dict.
    """

    __slots__ = ("action_class", "action_id", "action_state", "data", "description")

    def __init__(self, action_id: str | None = None, state: ActionState | str | None = None,
                 description: str | None = None, data: Any = None, *,
                 action_class: str = "", action_state: ActionState | str | None = None) -> None:
        state = state if state is not None else action_state
        if state is None:
            raise TypeError("Event() needs a state (an ActionState)")
        self.action_id = action_id
        self.action_state = ActionState(state)
        self.description = description
        self.data = data
        self.action_class = action_class

    @property
    def state(self) -> ActionState:
        return self.action_state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the official class

    def __repr__(self) -> str:
        return (f"Event(action_id={self.action_id!r}, state={self.action_state.value}, "
                f"description={self.description!r}, action_class={self.action_class!r})")

    __str__ = __repr__


class EventHandler:
    """Subclass and override :meth:`dispatch`. qfnb's own actions dispatch on qfnb's background
    loop thread, a user's sync action on the worker thread running it: keep it cheap, never
    block, and marshal to widgets (ipywidgets traits are thread-safe)."""

    def dispatch(self, event: Event) -> None:
        """Receive one event."""


def dispatch_event(event_handler: EventHandler | None = None, event: Event | None = None) -> None:
    """Deliver ``event``; a failing handler is logged, never allowed to break the pipeline."""
    if event_handler is None or event is None:
        return
    try:
        event_handler.dispatch(event)
    except Exception:
        logger.exception("event handler %r failed on %s/%s", event_handler,
                         event.action_class or event.action_id, event.action_state)

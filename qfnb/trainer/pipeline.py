"""``Pipeline`` (itself an action: it can be a step of another pipeline) and ``Trainer``."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from qfnb._core.runtime import sync

from ._action import BaseAction, RunContext, run_step
from .consts import ActionState, FinetuneStatus, status_of
from .event import Event, EventHandler, dispatch_event


class Pipeline(BaseAction):
    """A sequential chain of actions; finished actions are skipped on resume.

    ``exec(input=None, **kwargs)`` runs it (sync, on qfnb's loop; the keyword arguments are
    passed on to every user action's ``exec``); inside another pipeline it runs as one step.
    Events of every step go to ``event_handler``.

    As officially, ``actions`` is a dict of the steps by action id (in order; ``seq`` lists the
    ids) and ``current_action`` the id of the step a run is at (settable: a resume starts there);
    iterating the pipeline gives the steps, ``ppl[i]`` / ``ppl["id"]`` one of them, and
    ``current`` is the index of ``current_action``.
    """

    def __init__(self, actions: Sequence[BaseAction], post_actions: Sequence[BaseAction] = (),
                 event_handler: EventHandler | None = None, id: str | None = None,
                 **kwargs: Any) -> None:
        if not actions:
            raise ValueError("a pipeline needs at least one action")
        bad = [a for a in [*actions, *post_actions] if not isinstance(a, BaseAction)]
        if bad:
            raise TypeError(f"pipeline steps must be BaseAction instances, got {type(bad[0]).__name__}")
        super().__init__(id or f"ppl-{uuid.uuid4().hex[:12]}", kwargs.pop("name", None), event_handler, **kwargs)
        steps = [*actions, *post_actions]
        ids = [a.id for a in steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pipeline steps need distinct ids, got {ids}")
        #: the steps by action id, in order (the official SDK's ``Dict[str, BaseAction]``)
        self.actions: dict[str, BaseAction] = dict(zip(ids, steps, strict=True))
        self.seq: list[str] = ids
        self.current = 0
        self._ctx: RunContext | None = None

    @property
    def steps(self) -> list[BaseAction]:
        """The actions in order."""
        return [self.actions[i] for i in self.seq]

    @property
    def current_action(self) -> str:
        """The id of the step a run is at; set it (an id or an action) to resume from there."""
        return self.seq[self.current]

    @current_action.setter
    def current_action(self, key: str | BaseAction) -> None:
        key = key.id if isinstance(key, BaseAction) else key
        if key not in self.actions:
            raise KeyError(f"no action {key!r} in this pipeline; its actions are {self.seq}")
        self.current = self.seq.index(key)

    def __len__(self) -> int:
        return len(self.seq)

    def __iter__(self) -> Iterator[BaseAction]:
        return iter(self.steps)

    @property
    def status(self) -> FinetuneStatus:
        action = self.steps[self.current]
        if isinstance(action, Pipeline):
            return action.status
        if action.state is None:
            return FinetuneStatus.Created if self.current == 0 else FinetuneStatus.Unknown
        return status_of(type(action).__name__, action.state)

    def __getitem__(self, key: int | str) -> BaseAction:
        if isinstance(key, int):
            return self.steps[key]
        for a in self.steps:
            if key in (a.id, a.name, type(a).__name__):
                return a
        raise KeyError(key)

    def exec(self, input: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Run the pipeline (sync) and return the last action's output."""

        ctx = RunContext(kwargs.pop("config", None), self.event_handler, **kwargs)
        self._ctx = ctx
        return sync.run(self.arun(dict(input or {}), ctx))

    def stop(self) -> None:
        """Ask the running pipeline to stop after (or, while polling, during) its current step."""
        for ctx in (self._ctx, self.ctx):
            if ctx is not None:
                ctx.stop_flag.set()

    def register_event_handler(self, event_handler: EventHandler) -> None:
        """Send this pipeline's events to ``event_handler`` from now on."""
        self.event_handler = event_handler
        if self._ctx is not None:
            self._ctx.handler = event_handler

    async def aexec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """As a step of an outer pipeline: the steps run in the outer run's context."""
        return await self.arun(input, ctx)

    async def arun(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Run from ``current_action`` (steps before it count as done), skipping finished
        steps; returns the last action's output."""
        data = input
        outer = ctx.handler
        if self.event_handler is not None and self.event_handler is not outer:
            ctx.handler = self.event_handler if outer is None else _Both(outer, self.event_handler)
        try:
            for i, action in enumerate(self.steps):
                if i < self.current or (action.state is ActionState.Done and action.output is not None):
                    data = action.output if action.output is not None else data
                    continue
                self.current = i
                data = await run_step(action, data, ctx)
        finally:
            ctx.handler = outer
        return data

    def record(self) -> dict[str, Any]:
        return {**super().record(), "actions": self.records(), "current": self.current}

    def restore(self, rec: dict[str, Any]) -> None:
        super().restore(rec)
        self.restore_actions(rec.get("actions") or [], int(rec.get("current", 0)))

    def records(self) -> list[dict[str, Any]]:
        return [a.record() for a in self.steps]

    def restore_actions(self, records: list[dict[str, Any]], current: int) -> None:
        steps = self.steps
        if len(records) != len(steps):
            raise ValueError("saved pipeline has a different number of actions")
        for action, rec in zip(steps, records, strict=True):
            if rec.get("type") != type(action).__name__:
                raise ValueError(f"saved action {rec.get('type')} does not match {type(action).__name__}")
            action.restore(rec)
        self.seq = [a.id for a in steps]  # restored ids
        self.actions = dict(zip(self.seq, steps, strict=True))
        self.current = current


class _Both(EventHandler):
    """A nested pipeline's own handler next to the outer run's."""

    def __init__(self, *handlers: EventHandler) -> None:
        self.handlers = handlers

    def dispatch(self, event: Event) -> None:
        for h in self.handlers:
            dispatch_event(h, event)


class EventLog(EventHandler):
    """Keeps the last events of a trainer (``get_log()``) and forwards each to the user's handler."""

    def __init__(self, forward: EventHandler | None, size: int = 1000) -> None:
        self.forward = forward
        self.events: deque[Event] = deque(maxlen=size)
        self.watchers: list[Callable[[Event], None]] = []  # e.g. a progress bar of run()

    def dispatch(self, event: Event) -> None:
        self.events.append(event)
        for watch in list(self.watchers):
            watch(event)
        dispatch_event(self.forward, event)


class Trainer:
    """Base of trainers: ``run()`` the pipelines, ``stop()``, ``resume()``, ``status``;
    ``result`` (one entry per pipeline: its output, or the exception it ended with)."""

    ppls: list[Pipeline]

    def run(self, **kwargs: Any) -> Trainer:
        raise NotImplementedError

    def resume(self, **kwargs: Any) -> Trainer:
        raise NotImplementedError

    def stop(self) -> Trainer:
        raise NotImplementedError

    @property
    def status(self) -> str:
        raise NotImplementedError

    @property
    def result(self) -> list[Any]:
        """Per pipeline: the last output (or the error it ended with; ``None`` before a run)."""
        return list(getattr(self, "_results", None) or [None] * len(self.ppls))

    @property
    def actions(self) -> list[BaseAction]:
        """Every action of every pipeline, in order."""
        return [a for ppl in self.ppls for a in ppl.steps]

    def register_event_handler(self, event_handler: EventHandler, ppl_id: str | None = None) -> None:
        """Send the events of the pipelines (or of pipeline ``ppl_id``) to ``event_handler``."""
        if not callable(getattr(event_handler, "dispatch", None)):
            raise TypeError("event_handler must have a dispatch(event) method")
        found = False
        for ppl in self.ppls:
            if ppl_id is None or ppl.id == ppl_id:
                ppl.register_event_handler(event_handler)
                found = True
        if not found:
            raise KeyError(f"no pipeline {ppl_id!r}; pipelines are {[p.id for p in self.ppls]}")
        log = getattr(self, "_log", None)
        if isinstance(log, EventLog):
            log.forward = event_handler

    def get_log(self) -> list[dict[str, Any]]:
        """The events this trainer has seen in this process (the last 1000), oldest first."""
        log = getattr(self, "_log", None)
        events = list(log.events) if isinstance(log, EventLog) else []
        return [{"action_id": e.action_id, "action_class": e.action_class, "state": e.action_state.value,
                 "description": e.description} for e in events]

    def save(self) -> Trainer:
        """Save the trainer's state now (it is also saved at every step)."""
        raise NotImplementedError

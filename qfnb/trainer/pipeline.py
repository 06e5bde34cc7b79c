"""``Pipeline``: runs actions in order, emitting events and persisting after every step."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from .actions import BaseAction, RunContext, TrainerStopped
from .consts import ActionState, FinetuneStatus, status_of
from .event import EventHandler

logger = logging.getLogger("qfnb.trainer")


class Pipeline:
    """A sequential chain of actions; finished actions are skipped on resume."""

    def __init__(self, actions: Sequence[BaseAction], post_actions: Sequence[BaseAction] = (),
                 event_handler: EventHandler | None = None, id: str | None = None) -> None:
        if not actions:
            raise ValueError("a pipeline needs at least one action")
        self.id = id or f"ppl-{uuid.uuid4().hex[:12]}"
        self.actions = [*actions, *post_actions]
        self.event_handler = event_handler
        self.current = 0

    @property
    def current_action(self) -> BaseAction:
        return self.actions[self.current]

    @property
    def status(self) -> FinetuneStatus:
        action = self.current_action
        if action.state is None:
            return FinetuneStatus.Created if self.current == 0 else FinetuneStatus.Unknown
        return status_of(type(action).__name__, action.state)

    def __getitem__(self, key: int | str) -> BaseAction:
        if isinstance(key, int):
            return self.actions[key]
        for a in self.actions:
            if a.id == key or type(a).__name__ == key:
                return a
        raise KeyError(key)

    async def arun(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Run from the first unfinished action; returns the last action's output."""
        data = dict(input)
        if ctx.handler is None:
            ctx.handler = self.event_handler
        for i, action in enumerate(self.actions):
            if action.state is ActionState.Done and action.output is not None:
                data = action.output
                continue
            self.current = i
            action.ctx = ctx
            action.error = None
            action.emit(ActionState.Preceding, f"{type(action).__name__} starting")
            ctx.save()
            try:
                ctx.check_stop()
                out = await action.exec(data, ctx)
            except TrainerStopped as exc:
                await action.on_stop(ctx)
                action.error = str(exc)
                action.emit(ActionState.Stopped, str(exc))
                ctx.save()
                raise
            except BaseException as exc:
                if isinstance(exc, Exception):
                    action.error = f"{type(exc).__name__}: {exc}"
                    action.emit(ActionState.Error, action.error)
                else:  # cancelled / interrupted: leave it resumable
                    action.error = f"interrupted: {type(exc).__name__}"
                ctx.save()
                raise
            action.output = out
            action.emit(ActionState.Done, f"{type(action).__name__} done", out)
            ctx.save()
            data = out
        return data

    def records(self) -> list[dict[str, Any]]:
        return [a.record() for a in self.actions]

    def restore(self, records: list[dict[str, Any]], current: int) -> None:
        if len(records) != len(self.actions):
            raise ValueError("saved pipeline has a different number of actions")
        for action, rec in zip(self.actions, records, strict=True):
            if rec.get("type") != type(action).__name__:
                raise ValueError(f"saved action {rec.get('type')} does not match {type(action).__name__}")
            action.restore(rec)
        self.current = current


class Trainer:
    """Base of trainers: ``run()`` the pipelines, ``stop()``, ``resume()``, ``status``."""

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

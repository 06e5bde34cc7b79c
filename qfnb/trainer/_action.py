"""The action protocol: ``BaseAction`` (the official SDK's extension point), the run context
the pipeline shares with its actions, and the one place a step is run (:func:`run_step`).

A user's action subclasses :class:`BaseAction` and writes a **sync** ``exec(self, input=None,
**kwargs)``, as with the official SDK; qfnb runs it off the event loop, on a worker thread.
qfnb's own actions are async: they subclass :class:`AsyncAction` and write ``aexec(input,
ctx)``; their ``exec()`` runs them alone (on qfnb's loop) for the official call style.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from qfnb._core.config import resolve_config
from qfnb._core.errors import QfnbError
from qfnb._core.runtime import sync

from .consts import ActionState
from .event import Event, EventHandler, dispatch_event

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

Input = TypeVar("Input")
Output = TypeVar("Output")


class Executable(Generic[Input, Output], ABC):
    """Something with ``exec(input=None, **kwargs) -> output`` (official ``trainer.base``)."""

    @abstractmethod
    def exec(self, input: Input | None = None, **kwargs: Any) -> Output:
        """Run and return the output."""


class Serializable(ABC):  # noqa: B024  (no abstract method, as the official class)
    """Something that can be saved as bytes: ``dumps()`` / ``loads(data)``."""

    def dumps(self) -> bytes | None:
        return None

    def loads(self, data: bytes) -> Any:
        return None


class ExecuteSerializable(Executable[Input, Output], Serializable):
    """Executable and serializable (``qfnb.model.Model``/``Service`` count as such)."""


class TrainerStopped(QfnbError):
    """The pipeline was stopped by :meth:`LLMFinetune.stop`."""


class RunContext:
    """What actions share while running: config, events, persistence, stop flag, and the
    keyword arguments given to ``Pipeline.exec(input, **kwargs)`` (passed on to user actions)."""

    def __init__(self, config: Config | None, handler: EventHandler | None,
                 save: Callable[[], None] | None = None, **kwargs: Any) -> None:
        self.config = config
        self.handler = handler
        self.save: Callable[[], None] = save or (lambda: None)
        self.stop_flag = threading.Event()
        self.kwargs = kwargs

    def resolved(self) -> Config:
        return resolve_config(self.config)

    def check_stop(self) -> None:
        if self.stop_flag.is_set():
            raise TrainerStopped("the trainer was stopped")

    async def sleep(self, seconds: float) -> None:
        """Sleep without blocking the loop, waking early (and raising) when stopped."""
        end = asyncio.get_running_loop().time() + seconds
        while True:
            self.check_stop()
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.1))


class BaseAction(ExecuteSerializable[dict[str, Any], dict[str, Any]]):
    """An atomic, resumable step of a :class:`Pipeline` (official signature).

    Subclass it and write a sync ``exec(self, input=None, **kwargs)`` returning the next
    step's input; call ``self.action_event(ActionState.Running, "msg", data)`` to report.
    ``**kwargs`` given here are kept in ``self.kwargs``.
    """

    def __init__(self, id: str | None = None, name: str | None = None,
                 event_handler: EventHandler | None = None, **kwargs: Any) -> None:
        self.id = id or f"{type(self).__name__}_{uuid.uuid4().hex[:8]}"
        self.name = name or f"action_{self.id}"
        self.event_handler = event_handler
        self.kwargs = kwargs
        self.state: ActionState | None = None
        self.output: dict[str, Any] | None = None
        self.error: str | None = None
        self.extra: dict[str, Any] = {}
        self.ctx: RunContext | None = None

    @property
    def event_dispatcher(self) -> EventHandler | None:
        """The official SDK's name for :attr:`event_handler`."""
        return self.event_handler

    @event_dispatcher.setter
    def event_dispatcher(self, handler: EventHandler | None) -> None:
        self.event_handler = handler

    async def aexec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """How a pipeline runs this step: a sync ``exec`` goes to a worker thread, so a slow
        user action never blocks qfnb's event loop (nor the notebook's progress)."""
        return await asyncio.to_thread(self.exec, input, **ctx.kwargs)

    async def on_stop(self, ctx: RunContext) -> None:
        """Called when stopped while running (cancel the platform job, if any)."""

    def emit(self, state: ActionState, description: str = "", data: Any = None) -> None:
        """Record ``state`` and dispatch the event to the run's handler and this action's."""
        self.state = state
        ctx = self.ctx
        event = Event(self.id, state, description, data if data is not None else {},
                      action_class=type(self).__name__)
        dispatch_event(ctx.handler if ctx else None, event)
        if self.event_handler is not None and (ctx is None or self.event_handler is not ctx.handler):
            dispatch_event(self.event_handler, event)

    def action_event(self, state: ActionState, msg: str = "", data: Any = None) -> None:
        """Dispatch an event for this action (official name of :meth:`emit`)."""
        self.emit(state, msg, data)

    def action_error_event(self, e: Exception) -> None:
        """Dispatch an ``Error`` event for ``e``."""
        self.emit(ActionState.Error, f"{type(e).__name__}: {e}", {"error": str(e)})

    def stop(self) -> None:
        """Ask a running step to stop (checked between polls)."""
        if self.ctx is not None:
            self.ctx.stop_flag.set()

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "type": type(self).__name__,
                "state": self.state.value if self.state else None, "output": self.output,
                "error": self.error, "extra": self.extra}

    def restore(self, rec: dict[str, Any]) -> None:
        self.id = rec.get("id", self.id)
        self.state = ActionState(rec["state"]) if rec.get("state") else None
        self.output = rec.get("output")
        self.error = rec.get("error")
        self.extra = dict(rec.get("extra") or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, state={self.state})"


class AsyncAction(BaseAction):
    """qfnb's built-in actions: the work is ``async aexec(input, ctx)``; ``exec()`` runs the
    action alone on qfnb's loop (``LoadDataSetAction(dataset=Dataset(id=1)).exec()``)."""

    @abstractmethod
    async def aexec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """The step's work, on the event loop."""

    def exec(self, input: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Run this action alone and return its output (events go to its ``event_handler``)."""

        ctx = RunContext(kwargs.pop("config", None), self.event_handler, **kwargs)
        return sync.run(run_step(self, dict(input or {}), ctx))


async def run_step(action: BaseAction, data: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run one step: ``Preceding`` → work → ``Done`` (or ``Error``/``Stopped``), saving the
    run's state at each edge; a stop or failure is re-raised."""
    name = type(action).__name__
    action.ctx = ctx
    action.error = None
    action.emit(ActionState.Preceding, f"{name} starting")
    ctx.save()
    try:
        ctx.check_stop()
        out = await action.aexec(data, ctx)
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
    action.emit(ActionState.Done, f"{name} done", out)
    ctx.save()
    return out

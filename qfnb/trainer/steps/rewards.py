"""A RFT run's reward, in the user's own process: ``reward=fn`` with ``fn(prompt, completion, **kw) -> float``.

The training runs in the platform's worker; the reward never does. While the run trains,
:class:`RewardProvider` runs on qfnb's background loop in this process (beside the trainer's
polling: no ``asyncio.run`` in a kernel): it long-polls the platform for the samples the worker is
waiting on (``DescribeFineTuningRewardRequests``), calls ``fn`` on each, off the loop, and posts the
floats back (``SubmitFineTuningRewards``). ``kw`` are the dataset row's other fields (``response``
where the row has one).

A reward that raises, or returns something that is not a finite number (None, NaN, a string...),
stops the run: the error is posted to the platform (the worker fails the run with it: the task's
``errorMessage``, the dashboard) and raised here as :class:`RewardFunctionError`. A declarative grader
(``reward={"type": "string_check", ...}``, OpenAI's grader shape) is data: the platform scores it
and no function runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import QfnbError, ValidationError
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.console.rewards import (
    CLIENT,
    FETCH_ACTION,
    SUBMIT_ACTION,
    RewardSpecError,
    parse_reward,
    reward_problem,
)
from qfnb.protocol.wires.qianfan.routes import Console

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["RewardFunctionError", "RewardProvider", "resolve_reward", "reward_source"]

logger = logging.getLogger("qfnb.trainer")

#: the long poll's wait (the platform answers at once when samples are pending)
POLL_WAIT_S = 10.0
#: the first pause after a failed fetch (doubles, up to :data:`MAX_BACKOFF_S`)
BACKOFF_S = 1.0
MAX_BACKOFF_S = 15.0

Reward = Callable[..., Any]


class RewardFunctionError(QfnbError):
    """The reward function raised, or returned something that is not a finite number: the run stopped."""


def resolve_reward(value: Any, field: str = "reward") -> Reward | dict[str, Any]:
    """``reward=`` checked before anything is sent: a function taking ``(prompt, completion, **kw)``,
    ``"module:function"`` (imported here), or a declarative grader dict."""
    if isinstance(value, str):
        module, _, name = value.partition(":")
        if not module or not name:
            raise ValidationError(field, f"must be module:function, got {value!r}")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValidationError(field, f"cannot import {value!r}: {exc}") from None
    if isinstance(value, Mapping):
        try:
            return dict(parse_reward(dict(value), field).to_wire())
        except RewardSpecError as exc:
            raise ValidationError(field, str(exc).removeprefix(f"{field}: ")) from None
    if not callable(value):
        raise ValidationError(field, f"must be a function fn(prompt, completion, **kw) -> float or a grader dict, "
                              f"got {type(value).__name__}")
    try:
        inspect.signature(value).bind("prompt", "completion")
    except TypeError as exc:
        raise ValidationError(field, f"{_name(value)} must accept (prompt, completion, **kw): {exc}") from None
    except ValueError:  # a builtin without a signature: called as it is
        pass
    fn: Reward = value
    return fn


def reward_source(reward: Reward | Mapping[str, Any]) -> dict[str, Any]:
    """The task body's ``reward``: ``{"source": "client"}`` for a function, the grader itself otherwise."""
    return dict(reward) if isinstance(reward, Mapping) else {"source": CLIENT}


def _name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__)


class RewardProvider:
    """Scores one task's samples with ``fn`` until the task ends (see the module's docstring)."""

    def __init__(self, fn: Reward, task_id: str, config: Config | None,
                 on_error: Callable[[RewardFunctionError], None] | None = None) -> None:
        self.fn, self.task_id, self.config = fn, task_id, config
        self.on_error = on_error
        self.error: RewardFunctionError | None = None
        self.scored = 0  # samples scored so far
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RewardProvider:
        """Run :meth:`arun` as a task of the running loop (qfnb's, where the trainer polls)."""
        self._task = asyncio.get_running_loop().create_task(self.arun(), name=f"qfnb-rewards-{self.task_id}")
        return self

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def arun(self) -> None:
        """Fetch, score and post until the task ends or the reward fails."""
        backoff = BACKOFF_S
        while self.error is None:
            try:
                found = await self._call(FETCH_ACTION, {"taskId": self.task_id, "waitSeconds": POLL_WAIT_S})
                for request in found.get("requests") or []:
                    await self._answer(request)
                    if self.error is not None:
                        return
            except QfnbError as exc:  # the platform restarting, a network blip: the worker waits meanwhile
                logger.warning("could not exchange the rewards of task %s: %s", self.task_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = BACKOFF_S
            if found.get("runStatus") not in (RunStatus.WAITING, RunStatus.RUNNING):
                return

    async def _call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        from qfnb.resources.console.sending.sender import ConsoleRequest, asend  # deferred: the HTTP client

        resp = await asend(ConsoleRequest(Console.V2_FINETUNING, body, action), config=self.config)
        result = resp.body.get("result")
        return dict(result) if isinstance(result, dict) else {}

    async def _answer(self, request: Mapping[str, Any]) -> None:
        samples = list(request.get("samples") or [])
        try:
            rewards = await asyncio.to_thread(self.score, samples)  # the user's code, off the loop
        except RewardFunctionError as exc:
            self.error = exc
            await self._call(SUBMIT_ACTION, {"taskId": self.task_id, "requestId": request["requestId"],
                                             "error": str(exc)})
            if self.on_error is not None:
                self.on_error(exc)
            return
        await self._call(SUBMIT_ACTION, {"taskId": self.task_id, "requestId": request["requestId"],
                                         "rewards": rewards})
        self.scored += len(rewards)

    def score(self, samples: list[Mapping[str, Any]]) -> list[float]:
        """``fn`` on each sample; :class:`RewardFunctionError` naming the sample when it raises or
        returns a non-number."""
        out = []
        for sample in samples:
            prompt, completion = str(sample.get("prompt", "")), str(sample.get("completion", ""))
            where = f"(prompt {prompt!r:.80}, completion {completion!r:.80})"
            try:
                value = self.fn(prompt, completion, **dict(sample.get("fields") or {}))
            except Exception as exc:
                raise RewardFunctionError(f"the reward function {_name(self.fn)} raised {type(exc).__name__}: "
                                          f"{exc} {where}") from exc
            problem = reward_problem(value)
            if problem is not None:
                raise RewardFunctionError(f"the reward function {_name(self.fn)} returned {value!r:.60} {where}: "
                                          f"a reward {problem}")
            out.append(float(value))
        return out

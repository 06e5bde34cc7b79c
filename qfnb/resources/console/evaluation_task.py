"""Run one platform evaluation task: create it, poll until it leaves Pending/Doing.

Shared by the platform evaluators (``qfnb.evaluation``) and ``Model.batch_inference`` (a
manual-mode evaluation is the platform's batch run). The wait is :func:`qfnb._core.runtime.poll.apoll_until`:
a cancelled or timed-out wait stops the platform task before the interruption propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from qfnb._core.runtime.poll import apoll_until
from qfnb.protocol.console.enums import EvalState

from .model import Model

__all__ = ["arun_evaluation_task", "result_of"]

log = logging.getLogger("qfnb.evaluation")

_RUNNING = frozenset({EvalState.PENDING.value, EvalState.DOING.value})


def result_of(resp: Any) -> Any:
    """``resp["result"]`` (a QfResponse or its body), or ``resp`` itself when it has none."""
    try:
        return resp["result"]
    except (KeyError, TypeError):
        return resp


async def arun_evaluation_task(*, name: str, version_info: Sequence[Mapping[str, Any]], dataset_id: Any,
                               eval_config: Mapping[str, Any], poll_interval: float,
                               timeout: float | None = None, console: Any = None, config: Any = None,
                               **create_kwargs: Any) -> tuple[str, Any]:
    """Create the task and wait for it; ``(eval id, the last eval/detail result)``, whose
    ``state`` is anything but Pending/Doing; :class:`qfnb._core.runtime.poll.PollTimeoutError` (a
    ``qfnb.errors.TimeoutError``) after ``timeout`` seconds."""
    console = console or Model
    extra = {"config": config} if config is not None else {}
    created = result_of(await console.acreate_evaluation_task(
        name=name, version_info=list(version_info), dataset_id=dataset_id, eval_config=dict(eval_config),
        **extra, **create_kwargs))
    eval_id = created.get("evalIdStr") or created.get("evalId")
    log.info("platform evaluation task %s created (%s)", eval_id, eval_config.get("evalMode"))

    async def fetch() -> Any:
        info = result_of(await console.aget_evaluation_info(eval_id, **extra))
        log.debug("evaluation task %s: %s", eval_id, info.get("state"))
        return info

    info = await apoll_until(fetch, lambda info: info.get("state") not in _RUNNING, interval=poll_interval,
                             timeout=timeout, what=f"evaluation task {eval_id}",
                             stop=lambda: console.astop_evaluation_task(eval_id, **extra))
    return str(eval_id), info

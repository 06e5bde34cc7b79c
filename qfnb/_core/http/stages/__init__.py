"""The send pipeline: a client is an ordered list of small stages around one transport.
Part of ``qfnb._core.http``: may import ``qfnb.protocol`` and the ``_core`` rooms below ``http``
(record, globals, config, backend, transport, errors).

Every stage has one signature, ``async stage(call, next) -> answer`` (the anthropic SDK's
middleware model): it may look at or change the :class:`~qfnb._core.http.call.Call`, call
``next`` (the rest of the pipeline) zero, one or more times, and return or wrap its answer (a
:class:`~qfnb._core.http.response.QfResponse`, or an async iterator of them for a stream). The
client's default order, outermost first (:meth:`AsyncQianfanClient.default_stages`):

``record`` (cache and replay, budget, ledger) -> ``train`` (a console fine-tune run's hold, and its
settling when a read shows it ended) -> ``withdraw`` (a call its caller stops, on the
local platform) -> ``retry`` -> ``revive`` (the local daemon) ->
``outage`` (a server refusing connections) -> ``limit`` (rate limits) -> ``auth`` -> the
transport (:class:`~qfnb._core.http.stages.send.Send`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol, TypeAlias

from qfnb._core.http.call import Call
from qfnb._core.http.response import QfResponse

__all__ = ["Answer", "Next", "Stage", "compose"]

#: what a pipeline returns: one response, or a stream's chunks
Answer: TypeAlias = QfResponse | AsyncIterator[QfResponse]
#: the rest of the pipeline, as a stage sees it
Next: TypeAlias = Callable[[Call], Awaitable[Answer]]


class Stage(Protocol):
    """One stage: ``async (call, next) -> answer``."""

    def __call__(self, call: Call, next: Next) -> Awaitable[Answer]: ...


def compose(stages: Sequence[Stage], terminal: Next) -> Next:
    """One callable running ``stages`` in order (the first outermost) around ``terminal``."""
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, next=handler)
    return handler

"""Packed batches: consecutive inputs of a batch travel together, several in one call.

``Embedding().batch_do`` against the embedded platform packs the v1 API's 16-text calls into calls
of up to :attr:`Pack.size` texts (:mod:`.embedding`): one HTTP request, one route and one JSON
answer for many inputs, where the cloud's rule would make each input a call of its own. The batch
(:func:`.engine.run_batch`) schedules the packed calls as it schedules single ones (``worker_num``
of them in flight; a transient failure queues the packed call again, whole), and :class:`PackSink`
books their answers per input: each input its own answer or error, in input order, its own line
of a JSONL output file (so a re-run skips it), and its own tick of the progress.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Pack", "PackSink", "packs"]

Item = dict[str, Any]


@dataclass(frozen=True)
class Pack:
    """How a batch's inputs travel packed."""

    #: the most the inputs' weights add up to in one packed call (an input heavier than that goes alone)
    size: int
    #: an input's weight (an embeddings input: its texts)
    weight: Callable[[Item], int]
    #: the packed call: one answer per input (a value, or the exception as a value), in input order;
    #: it raises only what fails the inputs together (the batch retries a transient failure)
    call: Callable[[list[Item]], Awaitable[list[Any]]]


def packs(items: Iterable[Item], skip: Container[int], pack: Pack) -> Iterator[list[tuple[int, Item]]]:
    """Consecutive inputs not in ``skip`` (done in an earlier run), with their indices, in groups
    whose weights add up to at most ``pack.size``; lazily (memory does not grow with the input)."""
    group: list[tuple[int, Item]] = []
    load = 0
    for index, item in enumerate(items):
        if index in skip:
            continue
        weight = max(1, pack.weight(item))
        if group and load + weight > pack.size:
            yield group
            group, load = [], 0
        group.append((index, item))
        load += weight
    if group:
        yield group


class PackSink:
    """Books each packed call's answers per input: into ``sink``, the progress and the finished
    count (the batch books the packed call as one item; this books its inputs)."""

    def __init__(self, sink: Any, progress: Any, counter: list[int] | None) -> None:
        self.sink, self.progress, self.counter = sink, progress, counter
        #: the inputs' indices of each packed call handed out and not booked yet
        self._members: dict[int, list[int]] = {}

    def track(self, groups: Iterable[list[tuple[int, Item]]]) -> Iterator[list[Item]]:
        """The packed calls' inputs, in the order the batch numbers them."""
        for number, group in enumerate(groups):
            self._members[number] = [index for index, _ in group]
            yield [item for _, item in group]

    def ok(self, number: int, answers: list[Any]) -> None:
        for index, answer in zip(self._members.pop(number), answers, strict=True):
            if isinstance(answer, BaseException):
                self.sink.fail(index, answer)
            else:
                self.sink.ok(index, answer)
            self._tick(index, not isinstance(answer, BaseException))

    def fail(self, number: int, exc: BaseException) -> None:
        for index in self._members.pop(number):
            self.sink.fail(index, exc)
            self._tick(index, False)

    def _tick(self, index: int, ok: bool) -> None:
        if self.counter is not None:
            self.counter[0] += 1
        if self.progress is not None:
            self.progress.on_result(index, ok)

"""The answer's check against the whole schema, for what the grammar did not enforce.

When the engine's grammar enforces only part of a schema (:mod:`qfnb.protocol.schema.enforced`),
the answer is collected whole, checked with ``jsonschema`` against the client's schema (formats
included; its patterns with RE2, in linear time: :mod:`qfnb.protocol.schema.regex`) and, on a
miss, written again: at most :data:`RESAMPLES` more times, each with another
seed (and, where the request asked for greedy decoding, at :data:`RESAMPLE_TEMPERATURE`, since
greedy would write the same answer). A final miss is answered as it is, its last delta carrying
``schema_miss``: the failing keyword, its place and the message (chat completions report it as
the message's ``refusal``, OpenAI's field for an answer that is not the structured output).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from qfnb.local.engines.ask import GenParams
from qfnb.local.engines.base import Delta, aclose
from qfnb.protocol.limits import SCHEMA_RESAMPLES
from qfnb.protocol.schema import regex as schema_regex
from qfnb.protocol.schema.regex import validator_for

__all__ = ["RESAMPLES", "RESAMPLE_TEMPERATURE", "checked", "schema_miss"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: how many times a missed answer is written again (3 answers at most in all)
RESAMPLES = SCHEMA_RESAMPLES
#: the temperature of a resample where the request asked for greedy decoding
RESAMPLE_TEMPERATURE = 0.7


def schema_miss(value: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``value`` fails ``schema`` (the keyword, its place in the answer and the message), or None."""
    from jsonschema.exceptions import best_match

    cls = validator_for(dict(schema))
    error = best_match(cls(dict(schema), format_checker=cls.FORMAT_CHECKER).iter_errors(value))
    if error is None:
        return None
    place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "the answer"
    return f"{error.validator} at {place.lstrip('.')}: {error.message[:160]}"


def text_miss(text: str, schema: Mapping[str, Any]) -> str | None:
    """Why an answer's text is not a JSON value that fits ``schema``, or None."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the answer is not JSON ({exc})"
    return schema_miss(value, schema)


def calls_miss(deltas: list[Delta], schemas: Mapping[str, Any]) -> str | None:
    """Why a call's arguments do not fit its tool's schema (the first such call), or None."""
    for delta in deltas:
        for call in delta.tool_calls or ():
            fn = call.get("function") or {}
            schema = schemas.get(str(fn.get("name")))
            if schema is not None:
                miss = text_miss(fn.get("arguments") or "", schema)
                if miss:
                    return f"{fn.get('name')}: {miss}"
    return None


#: seconds an answer's check may take before the answer is given unchecked: a ``format: iri`` check runs
#: ~0.8 ms a character and ``uniqueItems`` over objects compares every pair (2,000 items: 6.4 s); the check runs
#: in a thread, so the event loop (every other call, /healthz) never waits on it
CHECK_SECONDS = 2.0


async def off_loop(miss: Callable[[T], str | None], answer: T) -> str | None:
    """``miss(answer)`` in a thread, within :data:`CHECK_SECONDS`; past them the answer is not checked (None,
    logged; the thread ends on its own, the answer being bounded by its token cap)."""
    if not _warmed.cache_info().currsize:  # jsonschema's import (seconds; the daemon does it before serving)
        await asyncio.to_thread(_warmed)   # is not the check's time
    try:
        return await asyncio.wait_for(asyncio.to_thread(miss, answer), CHECK_SECONDS)
    except TimeoutError:
        log.warning("the answer's schema check took more than %.0f s; the answer is given unchecked", CHECK_SECONDS)
        return None


@functools.cache
def _warmed() -> bool:
    schema_regex.warm()
    return True


def resample_params(gp: GenParams, attempt: int) -> GenParams:
    """The sampling settings of the ``attempt``-th answer (0: the request's own)."""
    if attempt == 0:
        return gp
    seed = (gp.seed if gp.seed is not None else 0) + attempt
    return dataclasses.replace(gp, seed=seed, temperature=RESAMPLE_TEMPERATURE if gp.greedy else gp.temperature)


async def checked(answer: Callable[[int], AsyncIterator[Delta]],
                  miss: Callable[[list[Delta]], str | None]) -> AsyncIterator[Delta]:
    """The first of up to ``1 + RESAMPLES`` answers (``answer(attempt)``) that ``miss`` passes,
    collected whole; the usage counts every answer written. A final miss is answered with
    ``schema_miss`` on its last delta. An answer cut by the token cap is not written again (another
    would be cut too), and its miss is answered as a final one."""
    spent = (0, 0)
    for attempt in range(RESAMPLES + 1):
        stream = answer(attempt)
        try:
            deltas = [d async for d in stream]
        finally:
            await aclose(stream)
        if not deltas:
            return
        problem = await off_loop(miss, deltas)
        last = attempt == RESAMPLES or problem is None or deltas[-1].finish_reason == "length"
        if last:
            for i, d in enumerate(deltas):
                d = d.after(*spent)
                yield dataclasses.replace(d, schema_miss=problem) if problem and i == len(deltas) - 1 else d
            if problem:
                log.warning("the answer missed the schema after %d resamples: %s", attempt, problem)
            return
        log.info("the answer missed the schema (%s); writing it again (%d of %d)", problem, attempt + 1, RESAMPLES)
        spent = (spent[0] + deltas[-1].prompt_tokens, spent[1] + deltas[-1].completion_tokens)

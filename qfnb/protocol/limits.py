"""The request caps, in one place.

The client checks them before sending (a clear error naming the field) and the local
platform before any work (``docs/local-platform.md`` has the table). Where the cloud
platform documents a limit, the number here is its largest: the client never refuses what
the cloud would accept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from qfnb.protocol.errors import ErrorCode, ProtocolError

MIB = 1024 * 1024

#: bytes of one JSON request body (inference, console, token routes)
MAX_BODY_BYTES = 8 * MIB
#: messages in one chat request (v1 and v2); no history that fits a served context is longer
MAX_MESSAGES = 2048
#: characters of all message contents plus ``system`` (a completion's ``prompt`` likewise): the
#: platform's largest documented input (its 128K-context ERNIE models; ``models.json``)
MAX_PROMPT_CHARS = 516_096
#: texts in one embeddings call (the platform's documented batch)
MAX_EMBEDDING_TEXTS = 16
#: texts in one call of the local platform's OpenAI-style embeddings routes (``/v1|/v2/embeddings``):
#: OpenAI's own cap. The engines pack texts into batches of their own size (USE-Multilingual-v3 by a
#: token budget, MiniLM 32 at a time), so one call's memory does not grow with its length.
LOCAL_MAX_EMBEDDING_TEXTS = 2048
#: characters of one embeddings text: the platform's largest documented (tao-8k)
MAX_EMBEDDING_CHARS = 28_000
#: ``max_output_tokens`` / ``max_tokens`` / ``max_completion_tokens``: the protocol's range, any model
MAX_OUTPUT_TOKENS = 65_536
#: the local platform's models' context window (tokens)
LOCAL_CONTEXT_TOKENS = 4096
#: the local platform's cap on the same fields: its context
LOCAL_MAX_OUTPUT_TOKENS = LOCAL_CONTEXT_TOKENS
#: the tokens one answer may generate when its call sets no cap: the local platform's default on
#: every route (v1, OpenAI, Responses, Messages, batch rows), and what a budget reserves for (and
#: sends as the cap of) a call that sets none
DEFAULT_OUTPUT_TOKENS = 1024
#: the local platform's cap on messages: a turn costs at least 5 tokens of the context (its markers,
#: role, newline and one token of content), so no longer history fits. It also bounds llama.cpp's
#: special-token split, whose time grows with the square of the turns (10,001 messages: about a minute).
LOCAL_MAX_MESSAGES = LOCAL_CONTEXT_TOKENS // 5
#: bytes of one uploaded object (a BOS ``PUT``) and of one file imported into a dataset (local platform)
MAX_UPLOAD_BYTES = 512 * MIB

#: JSON schemas (a ``response_format`` or output format, tool parameters): what the engine turns into a
#: grammar, checked before anything runs (:mod:`qfnb.protocol.schema.accepted`). The engine checks every
#: candidate token against each open alternative of the grammar, in its one decode loop, so a
#: schema's size is every other request's wait (bench/schema_isolation.py measures it).
#: bytes of compact JSON, one schema and a request's schemas in all
MAX_SCHEMA_BYTES = 64 * 1024
#: enum and const values in one schema, counted together
MAX_SCHEMA_ENUM_VALUES = 1000
#: nesting of subschemas (properties, items, anyOf, $ref, ...)
MAX_SCHEMA_DEPTH = 32
#: a pattern's ``{m,n}`` (refused past it) and ``minLength``/``maxLength``/``minItems``/``maxItems``
#: (left to the answer's check past it): the grammar repeats its rule that many times
MAX_SCHEMA_REPEAT = 1000
#: the product of a pattern's nested repetition bounds (``((ab){10}){100}``: 1,000): the grammar
#: follows that many ways through the pattern at once
MAX_PATTERN_REPEAT_PRODUCT = 1000
#: a number bound (``minimum``...) the grammar writes; one past it is checked on the answer instead
MAX_SCHEMA_BOUND = 2**53
#: how many times an answer that misses the part of its JSON schema the grammar does not enforce is
#: written again (checked with jsonschema; 3 answers at most in all)
SCHEMA_RESAMPLES = 2
#: stop strings in one request, and characters in each (v1's; the OpenAI routes take any length)
STOP_ITEMS, STOP_CHARS = 4, 20
#: tools offered in one request (OpenAI's documented maximum)
MAX_TOOLS = 128

#: the token-count fields :data:`LOCAL_MAX_OUTPUT_TOKENS` applies to
OUTPUT_TOKEN_FIELDS = ("max_output_tokens", "max_tokens", "max_completion_tokens")


def check_message_count(messages: list[Any] | tuple[Any, ...], field: str = "messages") -> None:
    """At most :data:`MAX_MESSAGES` messages (checked before looking at any of them)."""
    if len(messages) > MAX_MESSAGES:
        raise ProtocolError(field, f"holds {len(messages)} messages; at most {MAX_MESSAGES} are accepted",
                            ErrorCode.INVALID_MESSAGES)


def check_prompt_chars(texts: Iterable[Any], field: str = "messages") -> None:
    """The strings among ``texts`` total at most :data:`MAX_PROMPT_CHARS` characters (one pass)."""
    total = 0
    for text in texts:
        if isinstance(text, str):
            total += len(text)
            if total > MAX_PROMPT_CHARS:
                raise ProtocolError(field, f"the prompt exceeds {MAX_PROMPT_CHARS} characters in all "
                                    "(message contents and system together)", ErrorCode.INVALID_MESSAGES)


def check_stops(field: str, stops: Any, *, one_string: bool = False, max_chars: int | None = None) -> None:
    """``stops`` (None: not given) is a list of at most :data:`STOP_ITEMS` non-empty strings, each of at most
    ``max_chars`` characters when that is given (``one_string``: a string alone is one stop too)."""
    if one_string and isinstance(stops, str):
        stops = [stops]
    if stops is not None and (not isinstance(stops, list) or len(stops) > STOP_ITEMS or not all(
            isinstance(s, str) and s and (max_chars is None or len(s) <= max_chars) for s in stops)):
        raise ProtocolError(field, f"must be {'a string or ' if one_string else ''}a list of at most {STOP_ITEMS} "
                            "non-empty strings" + (f" of at most {max_chars} characters each" if max_chars else ""))


def check_flags(data: Mapping[str, Any], *names: str) -> None:
    """Each of ``names`` that ``data`` gives (not null) is true or false: the first that is not raises a
    :class:`ProtocolError` naming it."""
    for name in names:
        if data.get(name) is not None and not isinstance(data[name], bool):
            raise ProtocolError(name, f"must be true or false, got {type(data[name]).__name__}")


def check_embedding_text(text: str, field: str) -> None:
    if len(text) > MAX_EMBEDDING_CHARS:
        raise ProtocolError(field, f"is {len(text)} characters; at most {MAX_EMBEDDING_CHARS} are accepted")


def check_local(data: dict[str, Any]) -> None:
    """The local platform's own caps: the message count, then the token-count fields (their
    protocol range is checked elsewhere)."""
    messages = data.get("messages")
    if isinstance(messages, list) and len(messages) > LOCAL_MAX_MESSAGES:
        raise ProtocolError("messages", f"holds {len(messages)} messages; at most {LOCAL_MAX_MESSAGES} fit the "
                            f"local platform's {LOCAL_CONTEXT_TOKENS}-token context", ErrorCode.INVALID_MESSAGES)
    for name in OUTPUT_TOKEN_FIELDS:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > LOCAL_MAX_OUTPUT_TOKENS:
            raise ProtocolError(name, f"must be at most {LOCAL_MAX_OUTPUT_TOKENS} on the local platform "
                                f"(its models' context), got {value}")


def check_ranges(data: Mapping[str, Any], ranges: Mapping[str, tuple[float, float, bool, bool]]) -> None:
    """Each field of ``data`` that ``ranges`` bounds (a ``qfnb.protocol.wires.chat.ranges`` table) within its range:
    the first outside raises a :class:`ProtocolError` naming it."""
    for name, bounds in ranges.items():
        problem = range_problem(data.get(name), *bounds)
        if problem:
            raise ProtocolError(name, problem)


def range_problem(value: Any, lo: float, hi: float, lo_open: bool = False, integer: bool = False) -> str | None:
    """Why ``value`` is outside ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``; an int when
    ``integer``); None when it fits or is None. The bounds: a :data:`qfnb.protocol.wires.chat.ranges.RANGES` entry."""
    if value is None:
        return None
    kind = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kind):
        return f"must be {'an integer' if integer else 'a number'}, got {type(value).__name__}"
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if value > hi or value < lo or (lo_open and value == lo):
        return f"must be in {'(' if lo_open else '['}{lo}, {hi}], got {value}"
    return None

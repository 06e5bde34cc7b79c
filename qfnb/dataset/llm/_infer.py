"""Batch inference over a dataset (``Dataset.test_using_llm``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.runtime.progress import ProgressArg, make_progress
from qfnb.resources import ChatCompletion
from qfnb.resources.structured import (
    ERROR_COLUMN,
    AnswerSchema,
    SchemaError,
    answer_row,
    answer_schema,
    as_response_format,
)

from ..consts import LLMOutputColumnName as LLM_OUTPUT
from ..consts import NewInputChatColumnName as INPUT_CHATS
from ..consts import OldReferenceColumnName as EXPECTED_OUTPUT
from ..consts import RequestLatencyColumnName as CHAT_LATENCY

if TYPE_CHECKING:  # pragma: no cover
    from ..view import DatasetView


#: the latency column of a row's run (always there); a conversation's (the official name) is asked for
LATENCY = "request_latency"


async def aresolve_target(target: Any, model: str | None, endpoint: str | None) -> dict[str, str]:
    """:func:`resolve_target`, letting a Model look itself up (``achat_target``) without blocking."""
    achat_target = getattr(target, "achat_target", None)
    if callable(achat_target):
        return dict(await achat_target())
    return resolve_target(target, model, endpoint)


def resolve_target(target: Any, model: str | None, endpoint: str | None) -> dict[str, str]:
    """``ChatCompletion`` kwargs (``model``/``endpoint``) for a Service, Model, or name."""
    if target is None:
        if model is None and endpoint is None:
            raise ValidationError("service_or_model", "give a Model/Service, model= or endpoint=")
        return {k: v for k, v in (("model", model), ("endpoint", endpoint)) if v}
    if isinstance(target, str):
        return {"model": target}
    chat_target = getattr(target, "chat_target", None)
    if callable(chat_target):
        return dict(chat_target())
    raise ValidationError("service_or_model", f"cannot run inference on a {type(target).__name__}; "
                          "use a qfnb.model.Model/Service or a model name")


def prompts_of(ds: DatasetView, prompt_column: str) -> list[str]:
    """Every row's prompt, checked before anything is sent."""
    if prompt_column not in ds.columns:
        raise ValidationError("prompt_column", f"no column {prompt_column!r}; columns are {ds.columns}")
    prompts = []
    for i, row in enumerate(ds.to_pylist()):
        if not isinstance(row.get(prompt_column), str) or not row[prompt_column].strip():
            raise ValidationError(prompt_column, f"row {i}: prompt must be a non-empty string")
        prompts.append(row[prompt_column])
    return prompts


async def run_llm(ds: DatasetView, target: Any, *, model: str | None, endpoint: str | None,
                  prompt_column: str, concurrency: int, progress: ProgressArg,
                  params: dict[str, Any]) -> pd.DataFrame:
    """Chat every row's prompt; returns the rows (a frame) plus ``llm_output`` and ``request_latency``.
    A dataset read from conversations (``ds.as_conversations``) is chatted a conversation at a time,
    as the official SDK runs a packed one: ``input_chats`` (the turns, earlier answers as the
    assistant's), ``llm_output`` and ``expected_output`` (the last turn's answer), and
    ``request_complete_latency`` with ``does_show_latency=True``. With a ``response_format`` schema,
    also one column per field and ``error`` (:func:`schema_columns`)."""

    if prompt_column not in ds.columns:
        raise ValidationError("prompt_column", f"no column {prompt_column!r}; columns are {ds.columns}")
    if concurrency < 1:
        raise ValidationError("concurrency", "must be >= 1")
    params = dict(params)
    show_latency = bool(params.pop("does_show_latency", False))
    result_columns = [INPUT_CHATS, LLM_OUTPUT, EXPECTED_OUTPUT, CHAT_LATENCY] if ds.as_conversations else \
        [*ds.columns, LLM_OUTPUT, LATENCY]
    spec = answer_spec(params.get("response_format"), result_columns)
    kwargs = await aresolve_target(target, model, endpoint)
    chat = ChatCompletion(**kwargs, config=getattr(target, "config", None))
    prompts = prompts_of(ds, prompt_column)
    chats = chats_of(ds, prompt_column) if ds.as_conversations else None
    messages = [m for m, _ in chats] if chats is not None else [[{"role": "user", "content": p}] for p in prompts]
    outputs, latencies, errors = await _chat_all(chat, messages, params, concurrency,
                                                 make_progress(progress, desc="inference"))
    if chats is not None:
        df = pd.DataFrame({INPUT_CHATS: messages, LLM_OUTPUT: outputs, EXPECTED_OUTPUT: [e for _, e in chats]})
        if show_latency:
            df[CHAT_LATENCY] = latencies
    else:
        df = ds.to_pandas().reset_index(drop=True)
        df[LLM_OUTPUT] = outputs
        df[LATENCY] = latencies
    if spec is not None:
        return schema_columns(df, spec, outputs, errors)
    if any(errors):
        df[ERROR_COLUMN] = errors
    return df


def chats_of(ds: DatasetView, prompt_column: str) -> list[tuple[list[dict[str, str]], str]]:
    """Each conversation's messages (every turn's prompt, the earlier turns' answers from the
    reference column, ``response`` by default) and the last turn's answer, the expected output."""
    reference = ds.reference_column or "response"
    chats = []
    for turns in ds.groups():
        messages: list[dict[str, str]] = []
        for turn in turns[:-1]:
            messages += [{"role": "user", "content": turn[prompt_column]},
                         {"role": "assistant", "content": first_text(turn.get(reference))}]
        messages.append({"role": "user", "content": turns[-1][prompt_column]})
        chats.append((messages, first_text(turns[-1].get(reference))))
    return chats


def first_text(value: Any) -> str:
    """An answer as text: a string, or the first string of a (nested) list, as the platform
    writes a response (``[["text"]]``); ``""`` for none."""
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else ""


def answer_spec(fmt: Any, columns: list[str]) -> AnswerSchema | None:
    """The schema the answers are read with (None: free text), checked before anything is sent: its
    fields must not share a name with the result's ``columns`` or ``error``."""
    if fmt is None or fmt == "text" or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    try:  # a pydantic class validates rows as its instances; anything else as the request will send it
        spec = answer_schema(fmt if isinstance(fmt, type) else as_response_format(fmt))
    except SchemaError as exc:
        raise ValidationError("response_format", str(exc)) from None
    taken = [f for f in spec.fields if f in (*columns, ERROR_COLUMN)]
    if taken:
        raise ValidationError("response_format", f"the schema's field(s) {', '.join(map(repr, taken))} would "
                              "overwrite column(s) of the same name; rename them in the schema or the dataset")
    return spec


def schema_columns(df: pd.DataFrame, spec: AnswerSchema, outputs: list[str | None],
                   errors: list[str | None]) -> pd.DataFrame:
    """``df`` with one column per field of ``spec`` and ``error``: why a row's call failed or its
    answer did not parse or validate (None where it did)."""
    rows = [answer_row(spec, out, err) for out, err in zip(outputs, errors, strict=True)]
    parsed = pd.DataFrame(rows, columns=[*spec.fields, ERROR_COLUMN] if spec.fields else None, index=df.index)
    return pd.concat([df, parsed], axis=1)


async def _chat_all(chat: Any, chats: list[list[dict[str, str]]], params: dict[str, Any], concurrency: int,
                    bar: Any) -> tuple[list[str | None], list[float], list[str | None]]:
    """Each chat's answer, latency and error (``concurrency`` at a time), reported to ``bar``."""
    outputs: list[str | None] = [None] * len(chats)
    latencies: list[float] = [0.0] * len(chats)
    errors: list[str | None] = [None] * len(chats)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            try:
                resp = await chat.ado(messages=chats[i], **params)
                outputs[i] = resp.result
            except QfnbError as exc:
                errors[i] = f"{type(exc).__name__}: {exc}"
            latencies[i] = time.perf_counter() - start
            if bar is not None:
                bar.on_result(i, errors[i] is None)

    if bar is not None:
        bar.on_start(len(chats))
    try:
        await asyncio.gather(*(one(i) for i in range(len(chats))))
    finally:
        if bar is not None:
            bar.on_close()
    return outputs, latencies, errors

"""Batch inference over a dataset (``Dataset.test_using_llm``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .view import DatasetView


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
    With a ``response_format`` schema, also one column per field and ``error`` (:func:`schema_columns`)."""

    await ds.afetch()
    if prompt_column not in ds.columns:
        raise ValidationError("prompt_column", f"no column {prompt_column!r}; columns are {ds.columns}")
    if concurrency < 1:
        raise ValidationError("concurrency", "must be >= 1")
    spec = answer_spec(params.get("response_format"), ds.columns)
    kwargs = await aresolve_target(target, model, endpoint)
    config = getattr(target, "config", None)
    chat = ChatCompletion(**kwargs, config=config) if config is not None else ChatCompletion(**kwargs)
    prompts = prompts_of(ds, prompt_column)
    outputs, latencies, errors = await _chat_all(chat, prompts, params, concurrency,
                                                 make_progress(progress, desc="inference"))
    df = ds.to_pandas().reset_index(drop=True)
    df["llm_output"] = outputs
    df["request_latency"] = latencies
    if spec is not None:
        return schema_columns(df, spec, outputs, errors)
    if any(errors):
        df["error"] = errors
    return df


def answer_spec(fmt: Any, columns: list[str]) -> AnswerSchema | None:
    """The schema the answers are read with (None: free text), checked before anything is sent: its
    fields must not share a name with the dataset's columns or the columns inference adds."""
    if fmt is None or fmt == "text" or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    try:  # a pydantic class validates rows as its instances; anything else as the request will send it
        spec = answer_schema(fmt if isinstance(fmt, type) else as_response_format(fmt))
    except SchemaError as exc:
        raise ValidationError("response_format", str(exc)) from None
    taken = [f for f in spec.fields if f in (*columns, "llm_output", "request_latency", ERROR_COLUMN)]
    if taken:
        raise ValidationError("response_format", f"the schema's field(s) {', '.join(map(repr, taken))} would "
                              "overwrite column(s) of the same name; rename them in the schema or the dataset")
    return spec


def schema_columns(df: pd.DataFrame, spec: AnswerSchema, outputs: list[str | None],
                   errors: list[str | None]) -> pd.DataFrame:
    """``df`` with one column per field of ``spec`` and ``error``: why a row's call failed or its
    answer did not parse or validate (None where it did)."""
    import pandas as pd

    rows = [answer_row(spec, out, err) for out, err in zip(outputs, errors, strict=True)]
    parsed = pd.DataFrame(rows, columns=[*spec.fields, ERROR_COLUMN] if spec.fields else None, index=df.index)
    return pd.concat([df, parsed], axis=1)


async def _chat_all(chat: Any, prompts: list[str], params: dict[str, Any], concurrency: int,
                    bar: Any) -> tuple[list[str | None], list[float], list[str | None]]:
    """Each prompt's answer, latency and error (``concurrency`` at a time), reported to ``bar``."""
    outputs: list[str | None] = [None] * len(prompts)
    latencies: list[float] = [0.0] * len(prompts)
    errors: list[str | None] = [None] * len(prompts)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            try:
                resp = await chat.ado(messages=[{"role": "user", "content": prompts[i]}], **params)
                outputs[i] = str(resp["result"])
            except QfnbError as exc:
                errors[i] = f"{type(exc).__name__}: {exc}"
            latencies[i] = time.perf_counter() - start
            if bar is not None:
                bar.on_result(i, errors[i] is None)

    if bar is not None:
        bar.on_start(len(prompts))
    try:
        await asyncio.gather(*(one(i) for i in range(len(prompts))))
    finally:
        if bar is not None:
            bar.on_close()
    return outputs, latencies, errors

"""Read an evaluation set (qfnb Dataset, DataFrame, list of dicts) into ``input``/``reference``/``output``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from qfnb.protocol.console.textmetrics import as_text

from ._errors import invalid

#: the candidate column names, the last of each what ``Dataset.test_using_llm`` writes for a set of conversations
INPUT_NAMES = ("prompt", "input", "messages", "query", "question", "instruction", "input_chats")
REFERENCE_NAMES = ("response", "reference", "answer", "target", "expected", "label", "expected_output", "relevant")
OUTPUT_NAMES = ("llm_output", "output", "prediction", "completion")


def to_frame(dataset: Any) -> pd.DataFrame:
    """A pandas view of ``dataset`` (a qfnb ``Dataset``, a DataFrame, records or columns)."""
    if isinstance(dataset, pd.DataFrame):
        return dataset
    to_pandas = getattr(dataset, "to_pandas", None)
    if callable(to_pandas):
        frame = to_pandas()
        if isinstance(frame, pd.DataFrame):
            return frame
    if isinstance(dataset, Mapping):
        return pd.DataFrame(dict(dataset))
    if isinstance(dataset, Sequence) and not isinstance(dataset, str):
        if not all(isinstance(r, Mapping) for r in dataset):
            raise invalid("dataset", "rows must be dicts (e.g. {'prompt': ..., 'response': ...})")
        return pd.DataFrame(list(dataset))
    raise invalid("dataset", f"expected a qfnb Dataset, a pandas DataFrame or a list of dicts, "
                             f"got {type(dataset).__name__}")


def _pick(frame: pd.DataFrame, explicit: str | None, attr_names: Sequence[str], dataset: Any,
          candidates: Sequence[str], field: str, required: bool) -> str | None:
    if explicit is not None:
        if explicit not in frame.columns:
            raise invalid(field, f"column {explicit!r} not in the dataset (columns: {list(frame.columns)})")
        return explicit
    official = [getattr(dataset, attr, None) for attr in attr_names]  # official Dataset attributes: eval_input_column
    found = next((n for n in [*official, *candidates] if isinstance(n, str) and n in frame.columns), None)
    if found is None and required:
        raise invalid(field, f"no column found among {list(candidates)}; name it explicitly "
                             f"(dataset columns: {list(frame.columns)})")
    return found


def _cell_input(value: Any) -> list[dict[str, Any]] | str:
    if isinstance(value, list) and value and all(isinstance(m, Mapping) for m in value):
        return [dict(m) for m in value]
    return as_text(value)


def eval_frame(dataset: Any, *, input_column: str | None = None, reference_column: str | None = None,
               output_column: str | None = None, need_output: bool = False) -> pd.DataFrame:
    """A fresh frame with ``input``, ``reference`` (``""`` when absent) and, if asked, ``output``."""
    frame = to_frame(dataset)
    if frame.empty:
        raise invalid("dataset", "is empty")
    icol = _pick(frame, input_column, ("eval_input_column", "input_column"), dataset, INPUT_NAMES,
                 "input_column", True)
    rcol = _pick(frame, reference_column, ("reference_column",), dataset, REFERENCE_NAMES,
                 "reference_column", False)
    ocol = _pick(frame, output_column, ("eval_llm_output_column", "output_column"), dataset,
                 OUTPUT_NAMES, "output_column", need_output)
    out = pd.DataFrame({"input": [_cell_input(v) for v in frame[icol]]})
    out["reference"] = [as_text(v) for v in frame[rcol]] if rcol else ""
    if need_output and ocol:
        out["output"] = [as_text(v) for v in frame[ocol]]
    return out


def item_scores(samples: pd.DataFrame, tag: str, metric: str) -> dict[int, list[float]]:
    """``{item index: [scores over repeats]}`` for one model (missing scores dropped)."""
    rows = samples[samples["llm"] == tag]
    values = pd.to_numeric(rows[metric], errors="coerce").astype(float)
    out: dict[int, list[float]] = {}
    for index, value in zip(rows["index"], values, strict=True):
        if math.isfinite(value):
            out.setdefault(int(index), []).append(float(value))
    return out

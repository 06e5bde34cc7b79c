"""``%qfeval --judge --calibrate LABELS``: the user's own labels of a few judged answers, read before any
model is called from a dataset column or a file, as ``{model tag: {item position: label}}``.

A column holds a number on the labelled rows and nothing on the others. A file (``.csv``, ``.jsonl``,
``.json``) has one row per labelled item, found by ``id`` (the dataset's ``id`` column), ``index``
(the row's 0-based position) or ``input`` (the item's text), and its label in ``label`` (the one
model's) or in a column per model tag."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from qfnb.evaluation.stats.judge_check import MIN_LABELS
from qfnb.notebook.evaluation.options import EvalArgsError

#: the columns that find a file's row among the items, in the order tried
KEYS = ("id", "index", "input")


def read_labels(words: Sequence[str], source: pd.DataFrame, frame: pd.DataFrame,
                tags: Sequence[str]) -> dict[str, dict[int, float]]:
    """``COLUMN_OR_FILE`` (one model; a file may label several by tag) or ``TAG=COLUMN_OR_FILE``, each word."""
    out: dict[str, dict[int, float]] = {}
    for word in words:
        tag, sep, src = word.partition("=")
        if not sep:
            tag, src = "", word
        elif tag not in tags:
            raise EvalArgsError(f"--calibrate: {tag!r} is not one of the evaluated models {list(tags)}")
        if src in source.columns:
            if not tag and len(tags) != 1:
                raise EvalArgsError(f"--calibrate: with several models name whose labels {src!r} holds: TAG={src}")
            found = {tag or tags[0]: _numbers(source[src])}
        else:
            found = _file_labels(src, source, frame, tag, tags)
        for name, labels in found.items():
            if len(labels) < MIN_LABELS:
                raise EvalArgsError(f"--calibrate: {src!r} labels {len(labels)} of {name}'s item(s); label at least "
                                    f"{MIN_LABELS} (about 20 gives a useful interval)")
            out[name] = labels
    return out


def _numbers(values: pd.Series) -> dict[int, float]:
    got = pd.to_numeric(values, errors="coerce")
    return {int(i): float(v) for i, v in enumerate(got) if pd.notna(v)}


def _read(src: str, columns: Sequence[str]) -> pd.DataFrame:
    path = Path(src).expanduser()
    if not path.is_file():
        raise EvalArgsError(f"--calibrate: no column {src!r} in the dataset (columns: {list(columns)}), and no such "
                            "file")
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        if path.suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=path.suffix == ".jsonl")
    except ValueError as exc:
        raise EvalArgsError(f"--calibrate: cannot read {src}: {exc}") from None
    raise EvalArgsError(f"--calibrate: {src}: a labels file is .csv, .jsonl or .json")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _positions(table: pd.DataFrame, source: pd.DataFrame, frame: pd.DataFrame, src: str) -> list[int]:
    """Each file row's item position, by its key column."""
    key = next((k for k in KEYS if k in table.columns and (k != "id" or "id" in source.columns)), None)
    if key is None:
        raise EvalArgsError(f"--calibrate: {src} needs a column naming each item: id (the dataset's), index "
                            f"(0-based row) or input (columns: {list(table.columns)})")
    where: dict[Any, int]
    wanted: list[Any]
    if key == "index":
        where = {i: i for i in range(len(frame))}
        wanted = [int(v) if pd.notna(v) and float(v).is_integer() else v for v in table["index"]]
    elif key == "id":
        where = {str(v): i for i, v in reversed(list(enumerate(source["id"])))}
        wanted = [str(v) for v in table["id"]]
    else:
        where = {_text(v): i for i, v in reversed(list(enumerate(frame["input"])))}
        wanted = [_text(v) for v in table["input"]]
    missing = [w for w in wanted if w not in where]
    if missing:
        raise EvalArgsError(f"--calibrate: {src}: {len(missing)} row(s) match no item by {key} (first: "
                            f"{missing[0]!r})")
    return [where[w] for w in wanted]


def _file_labels(src: str, source: pd.DataFrame, frame: pd.DataFrame, tag: str,
                 tags: Sequence[str]) -> dict[str, dict[int, float]]:
    table = _read(src, source.columns)
    positions = _positions(table, source, frame, src)
    if tag:
        columns = {tag: "label" if "label" in table.columns else tag}
    elif "label" in table.columns and len(tags) == 1:
        columns = {tags[0]: "label"}
    else:
        columns = {t: t for t in tags if t in table.columns}
    absent = [c for c in columns.values() if c not in table.columns]
    if not columns or absent:
        raise EvalArgsError(f"--calibrate: {src} has no labels for {[tag] if tag else list(tags)}: give a column "
                            f"'label' (one model) or one named by each model (columns: {list(table.columns)})")
    return {name: {positions[k]: v for k, v in _numbers(table[column]).items()} for name, column in columns.items()}

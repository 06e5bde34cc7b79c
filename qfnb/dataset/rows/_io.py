"""Reading and writing dataset files (jsonl / json / csv / txt). Pure file I/O, no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from qfnb._core.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from ..view import DatasetView

GROUP = "_group"
_SUFFIXES = (".jsonl", ".json", ".csv", ".txt")


def frame_from_obj(data: Any, field: str) -> pd.DataFrame:
    """A DataFrame from list[dict], list[list[dict]] (grouped), list[str] or dict[str, list]."""
    if isinstance(data, dict):
        return _frame_of_columns(data, field)
    if not isinstance(data, list):
        raise ValidationError(field, f"must be a list or dict of lists, got {type(data).__name__}")
    if not data:
        return pd.DataFrame()
    if all(isinstance(x, str) for x in data):
        return pd.DataFrame({"text": data})
    if all(isinstance(x, dict) for x in data):
        return pd.DataFrame(data)
    if all(isinstance(x, list) for x in data):
        return _frame_of_groups(data, field)
    kinds = sorted({type(x).__name__ for x in data})
    raise ValidationError(field, f"items must all be dicts, lists of dicts or strings; got {kinds}")


def _frame_of_columns(data: dict[Any, Any], field: str) -> pd.DataFrame:
    lengths = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    if len(lengths) != len(data):
        raise ValidationError(field, "a dict must map column names to lists")
    if len(set(lengths.values())) > 1:
        raise ValidationError(field, f"columns have different lengths: {lengths}")
    return pd.DataFrame(data)


def _frame_of_groups(data: list[list[Any]], field: str) -> pd.DataFrame:
    """One row per turn, with the conversation's number in the group column."""
    rows: list[dict[str, Any]] = []
    for g, group in enumerate(data):
        for t, turn in enumerate(group):
            if not isinstance(turn, dict):
                raise ValidationError(f"{field}[{g}][{t}]", "each turn must be a dict")
            rows.append({**turn, GROUP: g})
    return pd.DataFrame(rows)


def _read_jsonl(path: Path) -> list[Any]:
    items: list[Any] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValidationError("data_file", f"{path.name} line {n} is not valid JSON: {exc.msg}") from None
    return items


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError("data_file", f"{path.name} is not valid JSON (line {exc.lineno}): "
                              f"{exc.msg}") from None


def _read_file(path: Path) -> tuple[pd.DataFrame, bool]:
    """A file's rows, and whether it holds conversations (a JSON list of turns per item)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False), False
    if suffix == ".txt":
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        return pd.DataFrame({"text": lines}), False
    data = _read_jsonl(path) if suffix == ".jsonl" else _read_json(path)
    conversations = isinstance(data, list) and bool(data) and all(isinstance(x, list) for x in data)
    if isinstance(data, list):
        data = normalize_items(data)
    return frame_from_obj(data, "data_file"), conversations


def normalize_items(items: list[Any]) -> list[Any]:
    """The platform writes every row as a list of turns: one-turn lists become plain rows;
    if any conversation has several turns, every item becomes a group."""
    if any(isinstance(x, list) and len(x) != 1 for x in items):
        return [x if isinstance(x, list) else [x] for x in items]
    return [x[0] if isinstance(x, list) else x for x in items]


def source_lines(path: Path) -> list[int] | None:
    """The 1-based file line of each row read from ``path`` (a .jsonl or .csv file), else None."""
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        text = path.read_text(encoding="utf-8").splitlines()
        return [n for n, line in enumerate(text, start=1) if line.strip()]
    if suffix == ".csv":
        rows = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) - 1
        return list(range(2, rows + 2))  # line 1 is the header
    return None


def read_path(path: Path, *, group: bool | None = None) -> tuple[pd.DataFrame, bool]:
    """Read a file, or every supported file of a folder (concatenated in name order); also
    whether every item was a conversation (a JSON list of turns, as the official SDK reads a
    packed table: one-turn ones are plain rows here, and saved back as lists)."""
    if not path.exists():
        raise ValidationError("data_file", f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES)
        if not files:
            raise ValidationError("data_file", f"folder {path} has no {'/'.join(_SUFFIXES)} files")
        read = [_read_file(p) for p in files]
        df = pd.concat([frame for frame, _ in read], ignore_index=True)
        conversations = all(conv for _, conv in read)
    elif path.suffix.lower() not in _SUFFIXES:
        raise ValidationError("data_file", f"unsupported file type {path.suffix!r}; "
                              f"use one of {', '.join(_SUFFIXES)}")
    else:
        df, conversations = _read_file(path)
    if group is False and GROUP in df.columns:
        df = df.drop(columns=[GROUP])
    return df, conversations


def platform_lines(ds: DatasetView) -> list[str]:
    """The platform's jsonl lines: one JSON list of turns per conversation."""
    return [json.dumps([_platform_turn(t) for t in group], ensure_ascii=False)
            for group in ds.groups()]


def _platform_turn(turn: dict[str, Any]) -> dict[str, Any]:
    out = dict(turn)
    response = out.get("response")
    if isinstance(response, str):
        out["response"] = [[response]]
    return out


def write_path(ds: DatasetView, path: Path, *, conversations: bool = False) -> None:
    """Write ``ds`` as .jsonl (platform layout), .json (list), or .csv. ``conversations`` (or a
    dataset read from conversations, ``ds.as_conversations``) writes every row as a one-turn
    conversation, a list, as the official SDK writes a packed table back."""
    suffix = path.suffix.lower()
    conversations = conversations or ds.as_conversations
    ds.fetch()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":  # a conversation per line when grouped, else a row per line (as officially)
        if ds.is_grouped:
            lines = platform_lines(ds)
        elif ds.is_dataset_packed():  # an entry per line, as the official SDK writes a packed set
            lines = [json.dumps(e, ensure_ascii=False) for e in ds.list()]
        else:
            lines = [json.dumps([r] if conversations else r, ensure_ascii=False) for r in ds.list()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif suffix == ".txt":  # a row per line: the value of a one-column set, else the row as JSON
        rows = ds.to_pylist()
        lines = [str(next(iter(r.values()))) if len(r) == 1 else json.dumps(r, ensure_ascii=False) for r in rows]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    elif suffix == ".json":
        data: Any = ds.groups() if ds.is_grouped or conversations else ds.list()
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    elif suffix == ".csv":
        ds.to_pandas().to_csv(path, index=False)
    else:
        raise ValidationError("data_file", f"cannot write {suffix!r}; use .jsonl, .json, .csv or .txt")

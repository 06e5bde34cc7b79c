"""Dataset schemas of the platform's templates. Pure checks: rows in, problems out.

A schema collects *every* problem (row number + field + what is wrong) so the user can fix
the file in one go; :meth:`Schema.validate` raises :class:`DatasetValidationError` listing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.protocol.console import train_formats
from qfnb.protocol.console.train_modes import mode_row
from qfnb.resources.console.consts import DataTemplateType

__all__ = [
    "DatasetValidationError", "Problem", "QianfanGenericText", "QianfanNonSortedConversation",
    "QianfanQuerySet", "QianfanSortedConversation", "Schema", "TrainModeData", "schema_for_template",
]

#: the column of a packed dataset (``qfnb.dataset.consts.QianfanDatasetPackColumnName``)
PACK = "_pack"
#: Show at most this many problems in the message (all of them are on ``.problems``).
_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    """One invalid value: ``row`` is the dataset row index (0-based, as ``ds[row]``); ``where``
    says it the way the user counts (``qa.jsonl line 7``), when the rows came from a file."""

    row: int
    field: str
    message: str
    where: str | None = None

    def __str__(self) -> str:
        return f"{self.where or f'row {self.row}'}, field {self.field!r}: {self.message}"


class DatasetValidationError(ValidationError):
    """The dataset does not match the schema; ``.problems`` lists every problem found."""

    def __init__(self, schema: str, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        first = problems[0].field if problems else "dataset"
        super().__init__(first, f"{len(problems)} problem(s) against {schema}:\n  {shown}{more}")


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN from pandas
    except (TypeError, ValueError):
        return False


class Schema:
    """Base schema: subclasses implement :meth:`check_row`."""

    name = "Schema"
    template_type: DataTemplateType | None = None

    def check_row(self, row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        """Yield ``(field, message)`` for each problem of one row."""
        return ()

    def problems(self, rows: Iterable[Mapping[str, Any]],
                 locate: Callable[[int], str] | None = None) -> list[Problem]:
        out: list[Problem] = []
        seen = False
        for i, row in enumerate(rows):
            seen = True
            out.extend(Problem(i, f, m, locate(i) if locate else None) for f, m in self._check_entity(row))
        if not seen:
            out.append(Problem(0, "dataset", "is empty"))
        return out

    def _check_entity(self, row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        """One row's problems; a still-packed row (a single ``_pack`` cell: one conversation as a
        list of turns, one row as a dict, or one text) is checked turn by turn."""
        if list(row) != [PACK]:
            yield from self.check_row(row)
            return
        cell = row[PACK]
        turns = cell if isinstance(cell, list) else [cell]
        if not turns:
            yield PACK, "is an empty conversation"
        for j, turn in enumerate(turns):
            entity = {"text": turn} if isinstance(turn, str) else turn
            if not isinstance(entity, Mapping):
                yield f"{PACK}[{j}]", f"must be a row (a dict), got {_show(turn)}"
                continue
            for f, m in self.check_row(entity):
                yield f"{PACK}[{j}].{f}", m

    def validate(self, rows: Iterable[Mapping[str, Any]], locate: Callable[[int], str] | None = None) -> None:
        """Raise :class:`DatasetValidationError` with every problem, or return. ``locate(i)``
        names row ``i`` as the user counts it (a file's 1-based line)."""
        found = self.problems(rows, locate)
        if found:
            raise DatasetValidationError(self.name, found)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class QianfanNonSortedConversation(Schema):
    """Chat SFT data (template 2000): ``prompt`` non-empty str, ``response`` ``[[str]]`` or str.

    Set ``is_annotated=False`` to allow rows without a response (a prompt set).
    """

    name = "QianfanNonSortedConversation"
    template_type = DataTemplateType.NonSortedConversation

    def __init__(self, is_annotated: bool = True) -> None:
        self.is_annotated = is_annotated

    def check_row(self, row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        if self.is_annotated and _missing(row.get("response")) and (other := _other_mode(row)) is not None:
            yield "record", f"looks like {other} data; SFT wants {train_formats.FORMATS['SFT']}"
            return
        if "prompt" not in row or _missing(row.get("prompt")):
            yield "prompt", "is missing"
        elif not _text(row["prompt"]):
            yield "prompt", f"must be a non-empty string, got {_show(row['prompt'])}"
        response = row.get("response")
        if _missing(response):
            if self.is_annotated:
                yield "response", "is missing"
            return
        if isinstance(response, str):
            if not response.strip():
                yield "response", "must not be empty"
            return
        if (not isinstance(response, list) or not response
                or not all(isinstance(r, list) and r and all(isinstance(s, str) for s in r)
                           for r in response)):
            yield "response", f"must be a string or [[str]], got {_show(response)}"
        elif not any(s.strip() for r in response for s in r):
            yield "response", "must not be empty"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(is_annotated={self.is_annotated})"


class QianfanSortedConversation(QianfanNonSortedConversation):
    """Ranked responses (template 2001): ``response`` is ``[[best], [second], ...]``."""

    name = "QianfanSortedConversation"
    template_type = DataTemplateType.SortedConversation


class _OneTextColumn(Schema):
    """A template whose rows need one non-empty string column, ``column``."""

    column = ""

    def check_row(self, row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        if not _text(row.get(self.column)):
            yield self.column, f"must be a non-empty string, got {_show(row.get(self.column))}"


class QianfanGenericText(_OneTextColumn):
    """Generic text (template 40100): a non-empty ``text`` column."""

    name = "QianfanGenericText"
    template_type = DataTemplateType.GenericText
    column = "text"


class QianfanQuerySet(_OneTextColumn):
    """Query set (template 40200): a non-empty ``prompt`` column."""

    name = "QianfanQuerySet"
    template_type = DataTemplateType.QuerySet
    column = "prompt"


class TrainModeData(Schema):
    """A train mode's data (``"DPO"``, ``"KTO"``, ``"PostPretrain"``, ``"RFT"``), each row checked as
    :mod:`qfnb.protocol.console.train_formats` reads it; a row in another mode's format is named with what it
    looks like. An earlier turn of a multi-turn conversation (``prompt``/``response``) passes."""

    def __init__(self, train_mode: str) -> None:
        self.train_mode = train_formats.train_mode(train_mode)
        self.name = f"{self.train_mode} data ({train_formats.FORMATS[self.train_mode]})"

    def check_row(self, row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        entity = {k: v for k, v in row.items() if not k.startswith("_") and not _missing(v)}
        if "_group" in row and train_formats.looks_like(entity) == "SFT (prompt/response)" \
                and not mode_row(self.train_mode).packed:
            return  # an earlier turn; the conversation's last turn is checked
        try:
            train_formats.parse_item(self.train_mode, entity, "row")
        except train_formats.FormatError as exc:
            yield "record", str(exc).removeprefix("row: ")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.train_mode!r})"


def schema_for_template(template_type: int) -> Schema:
    """The schema the platform enforces for ``template_type``."""
    table: dict[Any, type[Schema]] = {s.template_type: s for s in (
        QianfanNonSortedConversation, QianfanSortedConversation, QianfanGenericText, QianfanQuerySet)}
    if int(template_type) not in table:
        raise ValidationError("template_type", f"no local schema for template {template_type}")
    return table[int(template_type)]()


def _other_mode(row: Mapping[str, Any]) -> str | None:
    """What a row without a response looks like when that is another train mode's data (a DPO pair, a
    KTO item, plain text...), in :func:`~qfnb.protocol.console.train_formats.looks_like`'s words; None for
    a prompt alone or nothing recognised (its missing fields are named instead)."""
    entity = {k: v for k, v in row.items() if not k.startswith("_") and not _missing(v)}
    seen = train_formats.looks_like(entity)
    return None if seen in (None, "prompts (prompt)", "SFT (prompt/response)") else seen


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""What ``append`` and ``insert`` add, as the official SDK's tables do.

A packed table takes entries (a conversation, a text), a grouped one puts the new rows into
groups, a plain one takes rows. qfnb also takes a DataFrame, a Dataset, or conversations (lists
of lists of dicts) for an unpacked table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from qfnb._core.errors import ValidationError

from ..consts import QianfanDataGroupColumnName as GROUP
from ._io import frame_from_obj
from ._rows import frame_from_table


def packed_entries(elem: Any) -> list[Any]:
    """The entries ``elem`` adds to a packed table: a dict is a one-turn conversation, a list of
    dicts one conversation, a list of lists or of texts several entries, a text one."""
    if isinstance(elem, Mapping):
        return [[dict(elem)]]
    if isinstance(elem, str):
        return [elem]
    if isinstance(elem, list | tuple) and elem:
        if all(isinstance(e, Mapping) for e in elem):
            return [[dict(e) for e in elem]]
        if all(isinstance(e, list | str) for e in elem):
            return list(elem)
    raise ValidationError("elem", "a packed dataset takes a conversation (a list of dicts), a list of "
                          f"conversations or texts, a dict or a text; got {_kind(elem)}")


def new_rows(elem: Any, frame: pd.DataFrame, *, group_id: int = -1, add_new_group: bool = False,
             is_grouped: bool = True) -> pd.DataFrame:
    """The rows ``elem`` adds to the unpacked table ``frame``.

    On a grouped table (a ``_group`` column), as officially: a dict joins the last group
    (``add_new_group=True``: a new one); a list of dicts joins it together, or goes into one new
    group, or with ``is_grouped=False`` one new group per row; ``group_id=G`` starts at group G.
    Conversations keep their own grouping, after the last group."""

    if isinstance(elem, pd.DataFrame) or hasattr(elem, "to_pandas"):
        extra = frame_from_table(elem, "elem")
    elif isinstance(elem, Mapping):
        extra = pd.DataFrame([dict(elem)])
    elif isinstance(elem, list | tuple) and elem and all(isinstance(e, Mapping | list) for e in elem):
        extra = frame_from_obj(list(elem), "elem")
    else:
        raise ValidationError("elem", f"rows to add are a dict, a non-empty list of dicts (rows) or of lists of "
                              f"dicts (conversations), a DataFrame or a Dataset; got {_kind(elem)}")
    if GROUP not in frame.columns:
        return extra
    last = int(frame[GROUP].max()) if len(frame) else -1
    if GROUP in extra.columns:  # conversations: their groups follow the table's
        return extra.assign(**{GROUP: extra[GROUP] + last + 1})
    base, new = (group_id - 1, True) if group_id != -1 else (last, add_new_group or last < 0)
    if not new:
        groups = [base] * len(extra)
    elif is_grouped or isinstance(elem, Mapping):
        groups = [base + 1] * len(extra)
    else:
        groups = [base + 1 + i for i in range(len(extra))]
    return extra.assign(**{GROUP: groups})


def _kind(elem: Any) -> str:
    if isinstance(elem, list | tuple):
        return "an empty list" if not elem else f"a list of {type(elem[0]).__name__}"
    return type(elem).__name__

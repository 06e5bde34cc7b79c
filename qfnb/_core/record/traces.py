"""The local platform's call spans, read from the data dir's ``traces.sqlite3`` (what ``%qftrace``
shows): the last calls, or one kernel session's, or one cell's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qfnb.protocol.daemon import default_data_dir
from qfnb.protocol.traces import TRACES_FILE, CallSpan

__all__ = ["read_spans"]


def read_spans(data_dir: Path | None = None, *, last: int = 20, session: str | None = None,
               cell: int | None = None) -> list[CallSpan]:
    """The ``last`` spans (oldest first) of ``data_dir`` (default: ``$QFNB_DATA_DIR`` or ``~/.qfnb``),
    only ``session``'s and ``cell``'s when given; none when the platform has served no call."""
    path = (data_dir or default_data_dir()) / TRACES_FILE
    if not path.is_file():
        return []
    query, args = "SELECT * FROM spans WHERE 1=1", list[object]()
    if session is not None:
        query += " AND session = ?"
        args.append(session)
    if cell is not None:
        query += " AND cell = ?"
        args.append(cell)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        cur = db.execute(query + " ORDER BY started DESC LIMIT ?", [*args, max(1, last)])
        names = [d[0] for d in cur.description]
        found = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    except sqlite3.OperationalError:  # a file the platform has not finished creating
        return []
    finally:
        db.close()
    return [CallSpan(**row) for row in reversed(found)]

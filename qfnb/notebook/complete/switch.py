"""Inline completions' switch and spending, shared by ``%qfcomplete`` (in the kernel) and the Jupyter
server extension (:mod:`.handler`): the switch is a small file in the data dir, so ``%qfcomplete off``
reaches the server whatever the kernel is doing; what completions spent today is read from the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from qfnb._core.record.ledger import Ledger
from qfnb.notebook.complete.spending import WITHDRAWN_JOB, completion_rows
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.files import write_private_text

__all__ = ["SWITCH_FILE", "Today", "enabled", "set_enabled", "spent_today"]

SWITCH_FILE = "completions.json"


def _path(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()) / SWITCH_FILE


def enabled(data_dir: Path | None = None) -> bool:
    """Whether ``%qfcomplete`` left completions on (the default: on)."""
    try:
        found = json.loads(_path(data_dir).read_text())
    except (OSError, ValueError):
        return True
    return not (isinstance(found, dict) and found.get("enabled") is False)


def set_enabled(on: bool, data_dir: Path | None = None) -> None:
    """Turn completions on or off for every notebook of this data dir."""
    path = _path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_text(path, json.dumps({"enabled": on}))


@dataclass(frozen=True)
class Today:
    """What completions used: calls (shown or not) and tokens, and the calls withdrawn unshown."""

    calls: int
    tokens: int
    withdrawn: int = 0


def spent_today(ledger: Ledger | None = None, *, now: dt.datetime | None = None,
                session: str | None = None) -> Today:
    """Completions' calls and tokens in the ledger since local midnight (every session, or ``session``'s),
    counted as ``%qfusage`` counts them (the completion jobs' calls, cache hits left out)."""
    midnight = (now or dt.datetime.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = completion_rows(ledger, since=midnight.timestamp(), session=session)
    return Today(sum(r.requests for r in rows), sum(r.total_tokens for r in rows),
                 sum(r.requests for r in rows if r.job == WITHDRAWN_JOB))

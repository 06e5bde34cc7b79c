"""What a Ray batch job's log may say, checked before it counts: the log is written by a cluster the
submitter does not control (a hostile head, or another user of a shared cluster publishing rows under
this job's name), and its rows become results, usage in the ledger and spending against the budget.

Each submission gets a :class:`Journal`, kept by the submitter (0600, in the data dir, never sent
anywhere but to its own job): a random mark the job prints on every row (``qfnb_journal``), and each
row's worst case (:func:`~qfnb._core.http.recording.recorded.worst_case`, what its hold reserved). A row counts
only when it carries its own submission's mark, is a row that submission sent (once), and its usage
is whole numbers from 0 to that row's worst case (a sending's ``cap``, at most that worst case, and a
row's lost sendings: at most 7 such caps);
every other one is refused and reported.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb._core.http.recording.recorded import worst_case
from qfnb.local.cluster.jobs import JOURNAL_KEY, LOST_KEY, MAX_LOST_SENDS
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.files import write_private_json

from .state import answered

__all__ = ["Journal", "checked"]

logger = logging.getLogger("qfnb.batch.ray")

#: a submission id this side names its journal file by (the head's ids are not trusted as paths)
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass
class Journal:
    """One submission's mark and its rows' worst cases (``custom_id`` -> tokens)."""

    mark: str
    worst: dict[str, int]

    @classmethod
    def new(cls) -> Journal:
        return cls(secrets.token_hex(16), {})

    def add(self, row: Mapping[str, Any]) -> None:
        """Note one sent row's worst case (what the budget's hold reserved for it)."""
        body = row.get("body")
        self.worst[str(row.get("custom_id"))] = worst_case(body if isinstance(body, Mapping) else {}, "v2/chat")

    def save(self, submission_id: str) -> None:
        write_private_json(_path(submission_id), {"mark": self.mark, "worst": self.worst})

    @classmethod
    def load(cls, submission_id: str) -> Journal | None:
        """The journal this machine kept of ``submission_id``, or None (submitted elsewhere)."""
        if not _SAFE_ID.fullmatch(submission_id):
            return None
        try:
            data = json.loads(_path(submission_id).read_text(encoding="utf-8"))
            return cls(str(data["mark"]), {str(k): int(v) for k, v in data["worst"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def _path(submission_id: str) -> Path:
    return default_data_dir() / "ray-journal" / f"{submission_id}.json"


def checked(submission_id: str, rows: Sequence[dict[str, Any]], spent: Sequence[dict[str, Any]],
            sent: Sequence[dict[str, Any]] = ()) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                         list[dict[str, Any]], list[str]]:
    """The rows, in-flight spending and sendings (``QFNB-SENT``: each row at most once) of
    ``submission_id``'s log that its journal vouches for, and why each other line was refused (logged)."""
    journal = Journal.load(submission_id)
    kept: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]] = ([], [], [])
    refused: list[str] = []
    for kind, items, into in (("row", rows, kept[0]), ("spent", spent, kept[1]), ("sent", sent, kept[2])):
        seen: set[str] = set()
        for item in items:
            problem = _problem(item, kind, journal, seen)
            if problem is None:
                into.append(item)
            else:
                refused.append(f"{kind} {str(item.get('custom_id'))[:40]!r}: {problem}")
    if refused:
        logger.warning("Ray job %s: %d journal line(s) refused (not counted as results, usage or spending), "
                       "first: %s", submission_id, len(refused), refused[0])
    return *kept, refused


def _problem(item: dict[str, Any], kind: str, journal: Journal | None, seen: set[str]) -> str | None:
    if journal is None:
        return "this job was not submitted from here (no journal of it on this machine), so its rows cannot be checked"
    if item.get(JOURNAL_KEY) != journal.mark:
        return "it does not carry this submission's mark (another job printed it)"
    key = str(item.get("custom_id"))
    if key not in journal.worst:
        return "this submission sent no such row"
    if kind != "spent" and key in seen:
        return "printed twice"
    if kind == "sent":
        return _cap_problem(item, key, journal, seen)
    problem = _usage_problem(answered(item) if kind == "row" else item, journal.worst[key])
    if problem is None and kind == "row":
        problem = _lost_problem(item.get(LOST_KEY, []), journal.worst[key])
        if problem is None:
            seen.add(key)
    return problem


def _usage_problem(body: dict[str, Any] | None, worst: int) -> str | None:
    """A row's or a spending's usage: whole numbers from 0, their sum at most the row's worst case."""
    usage = (body or {}).get("usage") or {}
    if not isinstance(usage, Mapping):
        return "its usage is not an object"
    counts = [usage.get(name, 0) for name in ("prompt_tokens", "completion_tokens")]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return f"its usage is not whole numbers >= 0 ({counts!r:.80})"
    if sum(counts) > worst:
        return f"its usage, {sum(counts):,} tokens, is past the row's worst case of {worst:,}"
    return None


def _lost_problem(lost: object, worst: int) -> str | None:
    """A row's lost sendings (``qfnb_lost``): at most :data:`MAX_LOST_SENDS` caps, each a whole number
    from 0 to the row's worst case."""
    if not isinstance(lost, list) or len(lost) > MAX_LOST_SENDS or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= worst for c in lost):
        return (f"its lost sendings are not at most {MAX_LOST_SENDS} whole numbers from 0 to the row's worst case "
                f"of {worst:,}")
    return None


def _cap_problem(item: dict[str, Any], key: str, journal: Journal, seen: set[str]) -> str | None:
    """A sending's line: its ``cap`` a whole number from 0 to its row's worst case."""
    cap = item.get("cap")
    if not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap <= journal.worst[key]:
        return f"its cap is not a whole number from 0 to the row's worst case of {journal.worst[key]:,}"
    seen.add(key)
    return None

"""What the chaos bench's phases share: the kills they land, the rows' keys, and the engine's own
books read back (``bench/chaos_engine.py``'s journal: every request it received and how it ended)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

BATCH_MODEL, CHAT_MODEL = "chaos", "chaos-chat"
#: the kills after which a sending answered shortly before was not yet written (its answer went with
#: the process): the daemon's, and the Ray driver's (a row's answer returned, its journal line unprinted)
WRITERS = ("daemon", "ray driver")


@dataclass
class Kill:
    at: float      # seconds after the start
    target: str    # "daemon", "engine" or "ray driver"
    sig: int
    pause: float   # seconds before it is started again
    gone: float = 0.0  # when the killed process had ended (Unix time)


def row_key(kind: str, i: int) -> str:
    return f"{kind} row {i}"


@dataclass
class Request:
    rid: int
    key: str
    prompt: int
    start: float
    end: float | None = None
    completion: int = 0
    how: str = "open"   # done, abort, open (the engine was killed under it)
    life: int = 0       # which run of the engine process received it
    orphan: bool = False  # its sender had hung up by the time the engine read it


def engine_requests(journal: Path) -> list[Request]:
    found: dict[tuple[int, int], Request] = {}
    life = 0
    last_id = 0
    for line in journal.read_text().splitlines():
        entry = json.loads(line)
        if entry["ev"] == "dropped":  # no key, no id: counted by :func:`dropped_requests`
            continue
        if entry["ev"] == "recv":
            if entry["id"] <= last_id:  # ids start again: a new engine process
                life += 1
            last_id = entry["id"]
            found[(life, entry["id"])] = Request(entry["id"], entry["key"], entry["prompt"], entry["t"], life=life,
                                                 orphan=bool(entry.get("orphan")))
        else:
            req = found[(life, entry["id"])]
            req.end, req.how = entry["t"], entry["ev"]
            req.completion = entry.get("completion", entry.get("sent", 0))
    return list(found.values())


def dropped_requests(journal: Path) -> int:
    """Requests the engine's server took in and dropped unread, their senders gone (``dropped``)."""
    return sum(json.loads(line)["ev"] == "dropped" for line in journal.read_text().splitlines())


#: seconds a loaded engine may take to read a request it was sent (its loop busy): a request whose sender
#: had hung up by then (``orphan``) was sent by a process killed at most this long before
READ_LAG = 5.0


def hung_up(req: Request) -> bool:
    """Whether ``req``'s sender had hung up when the engine read it (``orphan``) or by its first word
    (dropped with nothing sent: the engine's check at reading races the news of its sender's end, and
    a living sender never drops a batch row that early: no row is pre-empted in the bench)."""
    return req.orphan or (req.how == "abort" and req.completion == 0)


def lost_to_a_kill(req: Request, kills: list[tuple[float, Kill]], window: float) -> bool:
    """Whether ``req``'s sending was in flight at a kill: open at it or sent while the process died
    (between the signal and its end), cut by it, or (a kill of a process that writes the answers:
    :data:`WRITERS`) answered at most ``window`` seconds before it, not yet written, or read by the
    engine after that process was signalled, its sender gone (:func:`hung_up`, at most :data:`READ_LAG`
    seconds after its end)."""
    return any((req.start <= kill.gone and (req.end is None
                                            or req.end >= when - (window if kill.target in WRITERS else 0.0)))
               or (hung_up(req) and kill.target in WRITERS and when <= req.start <= kill.gone + READ_LAG)
               for when, kill in kills)


def keep_logs(work: Path, dest: Path) -> None:
    """Copy a run's books to ``dest``: the engine's journal, the daemons' and the evaluation kernel's logs,
    and each batch's and fine-tune's own logs (named after their folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    for found in [work / "engine.jsonl", work / "kernel.log", *data.glob("*.log"), *data.glob("logs/*")]:
        if found.is_file():
            shutil.copy(found, dest / found.name)
    for found in [*data.glob("batches/*/*.log"), *data.glob("jobs/*/*.log"), *data.glob("jobs/*/progress.jsonl")]:
        shutil.copy(found, dest / f"{found.parent.name}-{found.name}")

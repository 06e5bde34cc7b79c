"""Importing a large ``.json`` dataset file (a list of conversations), in the same run: the rows read as the
code before read them (the whole document parsed, then its rows) against the platform's import
(``import_files``: the list parsed an item at a time and staged a batch at a time). Each side runs in a
process of its own, so its peak resident memory is its own; the peak over the process's start is printed.

    .venv/bin/python bench/json_import.py [--mib 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import load_average, log_to_stdout  # noqa: E402

log = logging.getLogger("bench.json_import")

#: one conversation of one turn, about 4 KiB
ITEM = json.dumps([{"prompt": "p" * 2000, "response": "r" * 2000}])


def write_file(path: Path, mib: int) -> int:
    """A ``.json`` list of about ``mib`` MiB, written an item at a time; its item count."""
    count = mib * 2**20 // (len(ITEM) + 2)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        for i in range(count):
            fh.write(("," if i else "") + ITEM + "\n")
        fh.write("]\n")
    return count


def one_side(side: str, work: Path, data: Path) -> None:
    """Run one side in this process; print ``rows seconds peak_rise_kib`` for the parent."""
    from qfnb.local.domain.state import datasets  # deferred: the child process measures its own import

    objects = datasets.ObjectStore(work / "objects")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if side == "whole":
        parsed = json.loads(objects.from_uri("bos:/b/big.json").read_text(encoding="utf-8"))
        rows = (row for item in parsed for row in datasets.normalize_rows(item))  # as it was: the rows one by one
        count = datasets.append_rows(data, {"id": 1, "sid": "s"}, rows)
    else:
        count = datasets.import_files(data, objects, {"id": 1, "sid": "s"}, ["bos:/b/big.json"])
    seconds = time.perf_counter() - start
    print(count, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--side", choices=["whole", "platform"], help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        one_side(args.side, args.work, args.data)
        return 0
    log_to_stdout()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = work / "objects" / "b" / "big.json"
        path.parent.mkdir(parents=True)
        items = write_file(path, args.mib)
        log.info("%d conversations, %.0f MiB; load %s", items, path.stat().st_size / 2**20, load_average())
        seen: dict[str, list[tuple[float, float]]] = {"whole": [], "platform": []}
        for n in range(args.rounds):
            for side in seen:
                out = subprocess.run([sys.executable, __file__, "--side", side, "--work", str(work), "--data",
                                      str(work / f"data-{side}-{n}")],
                                     check=True, capture_output=True, text=True).stdout.split()
                assert int(out[0]) == items, out
                seen[side].append((float(out[1]), float(out[2]) / 1024))
                log.info("%-8s %d rows in %.2f s, peak resident memory +%.0f MiB", side, int(out[0]),
                         float(out[1]), float(out[2]) / 1024)
        whole = [statistics.median(x[i] for x in seen["whole"]) for i in (0, 1)]
        ours = [statistics.median(x[i] for x in seen["platform"]) for i in (0, 1)]
        log.info("median: parsed whole %.2f s, +%.0f MiB; the platform %.2f s, +%.0f MiB (%.2fx the time, "
                 "%.0f MiB less at peak)", whole[0], whole[1], ours[0], ours[1], ours[0] / whole[0],
                 whole[1] - ours[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``/metrics``' batch counts read every batch job's ``usageByModel`` at each scrape (O(jobs)). The
store now keeps their running totals, written in the same transaction as the job's usage: a scrape
reads one small table. The totals agree with the sum over the jobs however the usage is rewritten
(growing, recounted after a resume, a model key left empty), across a reopen and another process's
store on the same file, and a data dir from before the totals is summed once when opened."""

from __future__ import annotations

import json
import random
from pathlib import Path

from platform_doubles import FakeRegistry
from platform_helpers import make_settings

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.store import USAGE_FIELD, Store


def _summed(store: Store, kind: str = "batches") -> dict[str, list[int]]:
    """The totals the slow way: every record's usage, summed."""
    total: dict[str, list[int]] = {}
    for task in store.all(kind):
        for model, counts in (task.get(USAGE_FIELD) or {}).items():
            sums = total.setdefault(model or task.get("model") or "unresolved", [0, 0, 0])
            for i, n in enumerate(counts[:3]):
                sums[i] += n
    return {m: c for m, c in total.items() if any(c)}


def test_the_running_totals_equal_the_sum_of_the_jobs_usage(tmp_path: Path) -> None:
    path = tmp_path / "platform.sqlite3"
    store, other = Store(path), Store(path)  # two processes' stores on one data dir
    rng = random.Random(7)
    jobs = [store.insert("batches", {"model": rng.choice(["m-a", "m-b"])})["id"] for _ in range(12)]
    for step in range(300):
        rid = rng.choice(jobs)
        writer = store if step % 3 else other
        task = writer.get("batches", rid)
        assert task is not None
        usage = {m: list(c) for m, c in (task.get(USAGE_FIELD) or {}).items()}
        model = rng.choice(["m-a", "m-b", ""])  # "" is the job's own model, as a row without one counts
        counts = usage.setdefault(model, [0, 0, 0])
        if rng.random() < 0.1:  # a resumed job recounts from its files: the usage may be written lower
            usage[model] = [max(0, n - rng.randint(0, 3)) for n in counts]
        else:
            usage[model] = [counts[0] + 1, counts[1] + rng.randint(5, 60), counts[2] + rng.randint(1, 30)]
        writer.update("batches", rid, **{USAGE_FIELD: usage}, done=step)
        if step % 50 == 0:
            assert store.usage_totals("batches") == _summed(store) == other.usage_totals("batches")
    want = _summed(store)
    assert set(want) == {"m-a", "m-b"} and store.usage_totals("batches") == want
    store.update("batches", jobs[0], done=-1)  # a write without usage leaves the totals as they are
    assert store.usage_totals("batches") == want
    assert store.usage_totals("evaluations") == {}
    store.close()
    other.close()
    assert Store(path).usage_totals("batches") == want  # kept in the file


def test_a_data_dir_from_before_the_totals_is_summed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "platform.sqlite3"
    store = Store(path)
    for i, usage in enumerate([{"m-a": [3, 30, 9]}, {"m-a": [1, 10, 2], "": [2, 5, 5]}, {}]):
        store.insert("batches", {"model": "m-b", "n": i})
        with store._lock:  # written as an older version did: the document only
            store._db.execute("UPDATE batches SET data = ? WHERE id = ?",
                              (json.dumps({"model": "m-b", USAGE_FIELD: usage}), i + 1))
    with store._lock:
        store._db.execute("DROP TABLE usage_totals")
    store.close()
    reopened = Store(path)
    assert reopened.usage_totals("batches") == {"m-a": [4, 40, 11], "m-b": [2, 5, 5]} == _summed(reopened)


def test_a_scrape_reads_the_totals_not_the_jobs(tmp_path: Path) -> None:
    """The platform's batch counts are the totals: the same numbers, without reading a job."""
    platform = Platform(make_settings(tmp_path), FakeRegistry())
    for i in range(5):
        task = platform.store.insert("batches", {"model": "m-a"})
        platform.store.update("batches", task["id"], **{USAGE_FIELD: {"m-a": [i, 10 * i, i + 1]}})

    def no_reads(*_: object, **__: object) -> object:
        raise AssertionError("a scrape read the batch jobs")

    platform.store.all = no_reads  # type: ignore[method-assign]
    assert platform._batch_usage() == {("batch", "m-a"): [10, 100, 15]}

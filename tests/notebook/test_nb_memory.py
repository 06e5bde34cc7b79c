"""``qfnb status``'s memory: the engines and workers the daemon started count, whichever thread
started them and however deep they run (the review saw "+ 0 MiB" while they held 3.8 GB)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from qfnb.local.engines.store.byom import descendants, rss_bytes

HOLD = ("import sys, time; data = bytearray(40 * 1024 * 1024); "
        "import subprocess; kid = subprocess.Popen([sys.executable, '-c', 'import time; b = bytearray(30 << 20); "
        "time.sleep(60)']) if sys.argv[1] == 'parent' else None; print('ready', flush=True); time.sleep(60)")


def test_child_memory_counts_every_thread_and_grandchild() -> None:
    procs: list[subprocess.Popen[str]] = []

    def start() -> None:  # started from a worker thread, as the engines are
        procs.append(subprocess.Popen([sys.executable, "-c", HOLD, "parent"], stdout=subprocess.PIPE, text=True))

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    try:
        assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == "ready"
        kids = descendants(os.getpid())
        assert procs[0].pid in kids and len(kids) >= 2, kids  # the worker thread's child and its child
        for _ in range(500):  # the grandchild allocates after it starts (a hang guard, not a speed check)
            total = sum(rss_bytes(k) for k in kids if k != procs[0].pid)
            if total >= 30 << 20:
                break
            time.sleep(0.01)
            kids = descendants(os.getpid())
        assert sum(rss_bytes(k) for k in kids) >= 70 << 20
    finally:
        for kid in descendants(procs[0].pid):
            subprocess.run(["kill", str(kid)], check=False)
        procs[0].kill()
        procs[0].wait()

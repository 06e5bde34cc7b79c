"""What the test suite saves by sharing its costly setup (scripts/test.sh, tests/README.md).

Measured here, in one run: a JupyterLab start and stop as the browser tests start it
(``browser_kit.jupyter_lab``, until ``/api/status`` answers), a kernel's shutdown after a test (what
the shared Lab pays instead), and a daemon on the default local models (``qfnb.openai_client``,
until both models have answered, then stopped), each ``--runs`` times. It prints the medians, then,
for the modules that share them, the setup each module used to start (the baseline) against the
one shared start, and the ratio.

    .venv/bin/python bench/suite_setup.py [--runs 2] [--skip-daemon]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, load_average, log_to_stdout

sys.path.insert(0, str(ROOT / "tests" / "notebook"))

import httpx
from browser_kit import jupyter_lab, shut_down_kernels

log = logging.getLogger("bench.suite_setup")

#: the serial phase's modules that use the shared Lab, and its browser tests (one kernel each, at least)
LAB_MODULES, LAB_TESTS = 9, 14
#: the real-path client modules on the shared default-model daemon
DAEMON_MODULES = 6


def lab_once() -> tuple[float, float]:
    """``(seconds to start and stop a Lab, seconds to shut down one kernel in it)``."""
    started = time.monotonic()
    with jupyter_lab(Path(tempfile.mkdtemp(prefix="bench-lab-"))) as lab:
        base, _, token = lab
        while True:
            try:
                if httpx.get(f"{base}/api/status?token={token}", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        up = time.monotonic() - started
        headers = {"Authorization": f"token {token}"}
        httpx.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"}, timeout=120)
        before = time.monotonic()
        shut_down_kernels(lab)
        shutdown = time.monotonic() - before
        stopping = time.monotonic()
    return up + (time.monotonic() - stopping), shutdown


def daemon_once() -> float:
    """Seconds for a default-model daemon to start, answer a chat and an embedding, and stop."""
    import qfnb
    from qfnb._core.backend import daemon
    from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL

    data = Path(tempfile.mkdtemp(prefix="bench-daemon-")) / "data"
    started = time.monotonic()
    sdk = qfnb.openai_client(data_dir=data, timeout=600)
    sdk.chat.completions.create(model=LOCAL_CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    sdk.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input="hi")
    daemon.stop_daemon(data, force=True, timeout=30)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skip-daemon", action="store_true", help="no real model (the Lab only)")
    args = parser.parse_args()
    log_to_stdout()
    log.info("load average at the start: %s", load_average())
    labs = [lab_once() for _ in range(args.runs)]
    lab, kernel = statistics.median(x[0] for x in labs), statistics.median(x[1] for x in labs)
    per_module, shared = LAB_MODULES * lab, lab + LAB_TESTS * kernel
    log.info("JupyterLab: %.1f s a start and stop, %.1f s a kernel's shutdown", lab, kernel)
    log.info("browser setup: %d Labs %.0f s (baseline) vs one shared Lab and %d kernel shutdowns %.0f s: "
             "ratio %.2f", LAB_MODULES, per_module, LAB_TESTS, shared, shared / per_module)
    if not args.skip_daemon:
        one = statistics.median(daemon_once() for _ in range(args.runs))
        log.info("default-model daemon: %.1f s to start, answer both models and stop", one)
        log.info("client setup: %d daemons %.0f s (baseline) vs one shared %.0f s: ratio %.2f",
                 DAEMON_MODULES, DAEMON_MODULES * one, one, 1 / DAEMON_MODULES)
    log.info("load average at the end: %s", load_average())


if __name__ == "__main__":
    main()

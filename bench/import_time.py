"""What qfnb's entry points cost to import: ``import qfnb``, ``%load_ext qfnb``, ``qfnb --help``, ...

Each case runs ``--runs`` times in a fresh interpreter under ``python -X importtime`` (after one
unmeasured run that writes the bytecode); a case's import time is the sum of every module's own
import time, and its CPU time is the interpreter's (user + system, start-up included: on a busy
machine it varies far less than the clock). The medians over the runs are printed with the
number of modules the case loads. With ``--baseline DIR`` (another checkout of qfnb, e.g.
``git worktree add /tmp/base main``) the same cases run against it too, interleaved with this
checkout's runs, and the ratio this / baseline is printed.

    .venv/bin/python bench/import_time.py [--runs 5] [--baseline /tmp/base]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "import qfnb": "import qfnb",
    "import qfnb.notebook": "import qfnb.notebook",
    "%load_ext qfnb": "import qfnb\nfrom IPython.testing.globalipapp import start_ipython\n"
                      "qfnb.load_ipython_extension(start_ipython())",
    "qfnb --help": "import contextlib, io, qfnb.cli\nwith contextlib.suppress(SystemExit), "
                   "contextlib.redirect_stdout(io.StringIO()):\n    qfnb.cli.main(['--help'])",
    "qfnb.ChatCompletion": "import qfnb\nqfnb.ChatCompletion",
    "import qfnb.dataset": "import qfnb.dataset",
    "import qfnb.trainer": "import qfnb.trainer",
    "import qfnb.evaluation": "import qfnb.evaluation",
    "the daemon's modules": "from qfnb.local.server import daemon\nfrom qfnb.local.server.app import create_app",
}


def measure(code: str, root: Path) -> tuple[float, float, int]:
    """``(import ms, CPU ms, modules)`` of one fresh interpreter running ``code``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, cwd=root,
                         capture_output=True, text=True, timeout=300, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    rows = [line.split("|")[0].rsplit(":", 1)[1].strip() for line in out.stderr.splitlines()
            if line.startswith("import time:")]
    own = [int(r) for r in rows if r.isdigit()]
    return sum(own) / 1000, cpu, len(own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, in the same run")
    args = parser.parse_args()
    roots = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    print(f"{'case':<24}" + "".join(f"{name + ' import':>16}{'CPU':>9}{'modules':>9}" for name in roots)
          + ("  ratio: import    CPU" if args.baseline else ""))
    for case, code in CASES.items():
        runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in roots}
        for root in roots.values():
            measure(code, root)  # writes the bytecode
        for _ in range(args.runs):
            for name, root in roots.items():
                runs[name].append(measure(code, root))
        imp = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
        cpu = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
        line = f"{case:<24}" + "".join(f"{imp[n]:>13.1f} ms{cpu[n]:>6.0f} ms{runs[n][-1][2]:>9}" for n in roots)
        if args.baseline:
            line += f"{imp['this'] / imp['baseline']:>15.3f}{cpu['this'] / cpu['baseline']:>7.3f}"
        print(line)


if __name__ == "__main__":
    main()

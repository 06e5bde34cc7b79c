"""Install footprint: qfnb's core install vs the official ``qianfan`` SDK, each in a fresh venv.

Usage: ``.venv/bin/python bench/install_footprint.py [--official qianfan==0.4.12.3]``

For each requirement it creates a virtual environment (no system site-packages), ``pip
install``s it (from the pip cache when possible, so it needs the package index), and prints
the distributions and site-packages megabytes it added (pip/setuptools excluded) and the
``import`` time of its ``ChatCompletion``. Two scenarios:

* ``fresh``: an empty venv;
* ``notebook``: a venv that already holds a Jupyter data-science stack (``--notebook-base``:
  ipykernel, ipywidgets, pandas, matplotlib), which is where a notebook tool gets installed.

qfnb is installed from this checkout without extras (``pip install .``): the SDK and the
notebook layer, whose notebook dependencies (pandas, matplotlib, ipywidgets, ipykernel) are
core by design; the embedded platform's engines and models are the ``local`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("bench.install")
ROOT = Path(__file__).resolve().parents[1]
BASE = {"pip", "setuptools", "wheel"}


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _inventory(py: Path, site: Path) -> tuple[set[str], int]:
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            check=True, capture_output=True, text=True).stdout.split()
    dists = {line.split("==")[0].lower() for line in listed} - BASE
    base_size = sum(dir_size(site / d) for d in os.listdir(site) if d.split("-")[0].lower() in BASE)
    return dists, dir_size(site) - base_size


def measure(requirement: str, import_stmt: str, workdir: Path, base: list[str]) -> dict[str, float]:
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if base:
        subprocess.run(pip + base, check=True, cwd=ROOT)
    site = next((venv / "lib").glob("python*/site-packages"))
    before, size0 = _inventory(py, site)
    t0 = time.perf_counter()
    subprocess.run([*pip, requirement], check=True, cwd=ROOT)
    install_s = time.perf_counter() - t0
    after, size1 = _inventory(py, site)
    code = f"import time; t = time.perf_counter(); {import_stmt}; print(time.perf_counter() - t)"
    best = min(float(subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True,
                                    cwd=workdir).stdout.split()[-1]) for _ in range(3))
    return {"dists": len(after - before), "mb": (size1 - size0) / 2**20, "install_s": install_s,
            "import_s": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", default="qianfan==0.4.12.3")
    ap.add_argument("--notebook-base", default="ipykernel ipywidgets pandas matplotlib",
                    help="what the 'notebook' scenario's venv holds before the install")
    ap.add_argument("--scenarios", default="fresh,notebook")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for scenario in args.scenarios.split(","):
        base = args.notebook_base.split() if scenario == "notebook" else []
        for label, req, stmt in (("qfnb (core)", str(ROOT), "from qfnb import ChatCompletion"),
                                 (args.official, args.official, "from qianfan import ChatCompletion")):
            with tempfile.TemporaryDirectory(prefix="qfnb-footprint-") as tmp:
                rows.append((scenario, label, measure(req, stmt, Path(tmp), base)))
    log.info("%-9s %-20s %8s %11s %10s %9s", "venv", "install", "+dists", "+size MB", "install s", "import s")
    for scenario, label, r in rows:
        log.info("%-9s %-20s %8d %11.1f %10.1f %9.3f", scenario, label, r["dists"], r["mb"], r["install_s"],
                 r["import_s"])
    for scenario in args.scenarios.split(","):
        ours, theirs = (r for s_, _, r in rows if s_ == scenario)
        log.info("%s venv: qfnb core adds %.2fx the packages and %.2fx the megabytes of the official SDK",
                 scenario, ours["dists"] / max(theirs["dists"], 1), ours["mb"] / max(theirs["mb"], 1e-9))


if __name__ == "__main__":
    main()

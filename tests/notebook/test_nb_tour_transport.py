"""The tour's kernels talk over Unix sockets: its log had a "Kernel is running over TCP without
encryption" warning for every notebook. The nbconvert line of ``scripts/tour.sh`` runs a notebook here."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]


def _tour_flags(ipc_dir: Path) -> list[str]:
    """The nbconvert options ``scripts/tour.sh`` runs each notebook with (its sockets' folder: ``ipc_dir``)."""
    text = (ROOT / "scripts" / "tour.sh").read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if "jupyter nbconvert" in ln]
    words = shlex.split(line.split("jupyter nbconvert", 1)[1])
    at = words.index("--output-dir")
    return [w.replace("$ipc_dir", str(ipc_dir)) for w in words[:at] + words[at + 2:] if w != "$nb"]


def test_the_tours_kernels_run_without_the_tcp_warning(tmp_path: Path) -> None:
    """As the tour runs it: nbconvert in the repository's root, the notebook (and so its kernel) in a
    folder of its own. With the sockets' default relative path the two met no socket, and the first
    notebook of a fresh clone's tour failed with "Kernel didn't respond in 60 seconds"."""
    ipc_dir, notebooks, launch = tmp_path / "ipc", tmp_path / "notebooks", tmp_path / "root"
    for folder in (ipc_dir, notebooks, launch):
        folder.mkdir()
    flags = _tour_flags(ipc_dir)
    assert "--KernelManager.transport=ipc" in flags
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nbformat.write(nb, notebooks / "t.ipynb")
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", *flags, "--output-dir", str(tmp_path / "out"),
                           str(notebooks / "t.ipynb")], cwd=launch, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "without encryption" not in proc.stderr and "42" in (tmp_path / "out" / "t.html").read_text()
    assert not list(ipc_dir.iterdir()) and not list(launch.iterdir())  # the sockets are gone with the kernel
    assert not [p.name for p in notebooks.iterdir() if "ipc" in p.name]

"""Run ``mypy --strict`` on one file from the repository root, as the typing tests do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MYPY = ("-m", "mypy", "--strict", "--warn-unused-ignores", "--follow-imports=silent", "--no-incremental")


def run_mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *MYPY, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)

"""Client-package tests share the local platform's test doubles (tests/local)."""

from __future__ import annotations

import sys
from pathlib import Path

LOCAL = str(Path(__file__).resolve().parents[1] / "local")
if LOCAL not in sys.path:
    sys.path.insert(0, LOCAL)

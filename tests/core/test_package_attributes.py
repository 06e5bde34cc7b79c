"""After a bare ``import qfnb`` every documented submodule is an attribute (the README's
``qfnb.usage.frame()`` raised AttributeError), loaded on first use: ``import qfnb`` loads none of them."""

from __future__ import annotations

import json
import subprocess
import sys

import qfnb

SUBMODULES = ("usage", "agents", "local_models", "evaluation", "dataset", "trainer", "errors", "notebook")


def test_every_documented_submodule_is_reached_from_a_bare_import_and_loaded_only_then() -> None:
    code = ("import json, sys, qfnb\n"
            f"names = {SUBMODULES!r}\n"
            "before = [n for n in names if 'qfnb.' + n in sys.modules]\n"
            "frame = qfnb.usage.frame\n"
            "after = [n for n in names if 'qfnb.' + n in sys.modules]\n"
            "print(json.dumps({'before': before, 'after': after, 'frame': frame.__module__}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["before"] == []  # `import qfnb` stays light
    assert "usage" in found["after"] and found["frame"] == "qfnb.usage"
    for name in SUBMODULES:
        assert getattr(qfnb, name).__name__ == f"qfnb.{name}"
    assert "notebook" not in qfnb.__all__  # `from qfnb import *` does not load IPython

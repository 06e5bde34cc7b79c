"""Write ``tests/seeds/official_surface.json``: the public names of the official SDK's
documented modules, which ``tests/seeds/test_official_surface.py`` requires qfnb to have.

Run with the conformance venv's python (it holds the official SDK)::

    ~/.cache/qfnb/conformance-venv/bin/python bench/conformance/surface.py

A module's names are its ``__all__`` (or, without one, the public names it defines), less
those the official module does not actually have (its ``__all__`` lists ``Token``, which it
never defines) and the typing helpers it merely imports.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import sys
from pathlib import Path

MODULES = ("qianfan", "qianfan.resources", "qianfan.dataset", "qianfan.trainer", "qianfan.model",
           "qianfan.evaluation", "qianfan.errors", "qianfan.consts", "qianfan.common", "qianfan.common.hub.hub",
           "qianfan.dataset.qianfan_data_operators", "qianfan.dataset.summarization_method")
OUT = Path(__file__).resolve().parent.parent.parent / "tests/seeds/official_surface.json"


def _official(value: object) -> bool:
    if inspect.ismodule(value):
        return value.__name__.startswith("qianfan")
    module = getattr(value, "__module__", None)
    return isinstance(module, str) and module.startswith("qianfan")


def public_names(name: str) -> list[str]:
    module = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return sorted(n for n in declared if hasattr(module, n)
                      and (_official(getattr(module, n)) or not callable(getattr(module, n))))
    return sorted(n for n, v in vars(module).items()
                  if not n.startswith("_") and (_official(v) or (n.isupper() and isinstance(v, str))))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("QIANFAN_LOG_LEVEL", "ERROR")
    surface = {m.replace("qianfan", "qfnb", 1): public_names(m) for m in MODULES}
    OUT.write_text(json.dumps(surface, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    logging.getLogger("surface").info("wrote %s (%d names)", OUT, sum(map(len, surface.values())))


if __name__ == "__main__":
    sys.exit(main())

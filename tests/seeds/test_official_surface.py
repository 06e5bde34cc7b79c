"""Every public name of the official SDK's documented modules imports from qfnb's same path.

The list (``official_surface.json``) is written from the official SDK 0.4.12.3 by
``bench/conformance/surface.py``; qfnb's own extras sit beside these names.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

SURFACE: dict[str, list[str]] = json.loads((Path(__file__).parent / "official_surface.json").read_text("utf-8"))


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_official_public_names_import(module: str) -> None:
    mod = importlib.import_module(module)
    missing = [name for name in SURFACE[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lacks the official names {missing}"


def test_the_list_covers_every_documented_module() -> None:
    assert set(SURFACE) == {"qfnb", "qfnb.resources", "qfnb.dataset", "qfnb.trainer", "qfnb.model",
                            "qfnb.evaluation", "qfnb.errors", "qfnb.consts", "qfnb.common", "qfnb.common.hub.hub",
                            "qfnb.dataset.qianfan_data_operators", "qfnb.dataset.summarization_method"}
    assert all(SURFACE.values())

"""The tour notebooks as tests.

The saved notebooks are what ``notebooks/_build.py`` generates: code cells without outputs,
except the ``# NBVAL_CHECK_OUTPUT`` contract cells, which carry their expected output.

The quick tour runs under nbval in a child pytest, exactly as a person would run it::

    pytest -p no:cacheprovider --nbval-lax --nbval-current-env \\
        --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/01_quick_tour.ipynb

Every cell must run; contract cells must match. The kernel inherits this process's
environment (``QFNB_DATA_DIR`` included). The fine-tune notebook runs once, in
``test_nb_browser.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
from types import ModuleType

import nbformat
import pytest
from nbcheck import NOTEBOOKS, ROOT, is_contract, nbval_command

TOUR = NOTEBOOKS / "01_quick_tour.ipynb"
# what a saved output must never hold: local paths, credentials
LEAKS = re.compile(r"/home/|/root/|/work/|/tmp/|[A-Za-z]:\\|token|secret|access.?key|QIANFAN_", re.IGNORECASE)


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qfnb_notebook_builder", NOTEBOOKS / "_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_saved_notebooks_are_what_the_builder_generates() -> None:
    build = builder()
    for name, cells in build.NOTEBOOKS.items():
        saved = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert saved == build.notebook(cells), f"{name} differs from notebooks/_build.py: regenerate it"


@pytest.mark.parametrize("name", ["01_quick_tour.ipynb", "02_finetune_end_to_end.ipynb"])
def test_only_contract_cells_carry_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    contracts = [c for c in nb.cells if is_contract(c)]
    assert contracts, "each tour notebook checks some output"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert bool(cell.outputs) == is_contract(cell), cell.source
        assert (cell.execution_count is not None) == is_contract(cell), "nbval skips unrun reference cells"
        for out in cell.outputs:
            assert out.output_type in ("stream", "execute_result"), out
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            assert set(out.get("data", {})) <= {"text/plain"} and text
            assert not LEAKS.search(text), text


@pytest.mark.real_model
def test_quick_tour_under_nbval() -> None:
    before = TOUR.read_bytes()
    started = time.monotonic()
    proc = subprocess.run(
        nbval_command(TOUR), cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=1200
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"nbval failed after {time.monotonic() - started:.0f} s:\n{log[-6000:]}"
    code_cells = sum(c.cell_type == "code" for c in nbformat.read(TOUR, as_version=4).cells)
    assert re.search(rf"\b{code_cells} passed\b", log), log[-2000:]
    assert TOUR.read_bytes() == before, "running the notebook must not change it"

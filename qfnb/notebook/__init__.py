"""The notebook layer: the magics (``magics``) and, by what the user sees, ``chat``, ``training``,
``evaluation``, ``data`` and ``complete``, on the rooms they share (``ledger``: usage, cache and traces;
``models``: what can answer; ``widgets``), all drawn with ``render`` (styles, charts, the one HTML widget).
The only qfnb package that imports IPython / ipywidgets, lazily: ``import qfnb.notebook`` (or
``qfnb.notebook.widgets.progress``, the SDK's batch progress as a widget) imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qfnb.notebook.widgets import progress as _progress  # noqa: F401 - registers the widget renderer with the core

if TYPE_CHECKING:  # pragma: no cover
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext qfnb.notebook``: register the qfnb magics."""
    # deferred: loads IPython and ipywidgets (`import qfnb.notebook` does not)
    from qfnb.notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    # deferred: loads IPython and ipywidgets (`import qfnb.notebook` does not)
    from qfnb.notebook.magics import unload_ipython_extension as unload

    unload(ipython)

"""The notebook layer: magics, live dashboards and rich displays.

This is the only qfnb package that imports IPython / ipywidgets, and it does so lazily:
``import qfnb.notebook`` (or ``qfnb.notebook.progress``) imports neither, so the SDK can hand
its batch progress to :class:`qfnb.notebook.progress.Progress` without pulling in a frontend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qfnb.notebook import progress as _progress  # noqa: F401 - registers the widget renderer with the core

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

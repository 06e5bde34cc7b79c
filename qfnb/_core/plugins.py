"""Where the layers above the client core plug into it: the one registration module.

``qfnb/__init__.py`` fills it in as the package is imported, so it is filled whichever qfnb
module a program imports first; the core reads it and never imports a layer above itself.
Tests swap an entry with ``monkeypatch.setattr(plugins, ...)``. (The default platform when
nothing is configured has its own typed hook, :func:`qfnb._core.config.set_default_backend`.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: How a ``mode="widget"`` progress bar draws: ``factory(desc)`` gives a
#: :class:`qfnb._core.runtime.progress.Renderer` (the notebook layer's ipywidgets bar,
#: imported only when a bar is drawn). None: bars draw as text.
widget_renderer: Callable[[str], Any] | None = None

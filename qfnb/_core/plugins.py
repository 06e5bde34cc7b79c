"""Where the layers above the client core plug into it: the one registration module.

``qfnb/__init__.py`` fills it in as the package is imported, so it is filled whichever qfnb
module a program imports first; the core reads it and never imports a layer above itself.
Tests swap an entry with ``monkeypatch.setattr(plugins, ...)``. (The default platform when
nothing is configured has its own typed hook, :func:`qfnb._core.config.set_default_backend`.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: What was set on the official ``qfnb.get_config()`` object, by qfnb field name (the official-only
#: settings upper-case, e.g. ``BOS_HOST_REGION``): :meth:`qfnb._core.config.Config.from_env` lays
#: its fields over the environment. Filled in with :func:`qfnb.config.global_settings`.
global_settings: Callable[[], Mapping[str, Any]] | None = None

#: How a ``mode="widget"`` progress bar draws: ``factory(desc)`` gives a
#: :class:`qfnb._core.runtime.progress.Renderer` (the notebook layer's ipywidgets bar,
#: imported only when a bar is drawn). None: bars draw as text.
widget_renderer: Callable[[str], Any] | None = None

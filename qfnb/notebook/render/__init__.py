"""The shared rendering of every notebook view: theme-aware styles (``theme``), PNG charts
(``charts``) and the typed ipywidgets bases with ``SafeHTML``, the one widget for HTML.
The one escaping rule is :mod:`qfnb.resources.safe_html`. Imports only it and the core: no other notebook module."""

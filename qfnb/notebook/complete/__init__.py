"""Inline completions in JupyterLab 4 / Notebook 7 (docs/completions.md): the Jupyter server extension
(:mod:`.handler`, ``POST {base_url}qfnb/inline-completions``; streamed: :mod:`.stream`; its typed
body: :mod:`.wire`) behind the editor's provider (labextension/), the context it builds
(:mod:`.context`, :mod:`.scope`, :mod:`.redact`), who answers (:mod:`.backends`), what it may spend
(:mod:`.spending`), the switch (:mod:`.switch`) and ``%qfcomplete`` (:mod:`.magic`). Importing this
package loads neither IPython nor jupyter_server: the server loads the handler when it loads the
extension.
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "qfnb.notebook.complete"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Add the completion handler to the Jupyter server (``jupyter server extension list`` shows it)."""
    # deferred: loads jupyter_server and tornado (importing the package does not)
    from jupyter_server.utils import url_path_join

    from qfnb.notebook.complete.handler import CompleteHandler, Completions, WarmHandler, limits_of
    from qfnb.notebook.complete.spending import Spending
    from qfnb.notebook.complete.stream import StreamHandler
    from qfnb.notebook.complete.wire import EDITOR_ROUTE, EDITOR_STREAM_ROUTE, EDITOR_WARM_ROUTE

    web_app = server_app.web_app
    limits = limits_of(server_app)  # a bad setting stops the extension's load, naming it
    web_app.settings["qfnb_completions"] = Completions(spending=Spending(limits))
    base = web_app.settings["base_url"]
    route = url_path_join(base, EDITOR_ROUTE)
    web_app.add_handlers(".*$", [(route, CompleteHandler), (url_path_join(base, EDITOR_STREAM_ROUTE), StreamHandler),
                                 (url_path_join(base, EDITOR_WARM_ROUTE), WarmHandler)])
    server_app.log.info("qfnb: inline completions at %s (%s)", route, limits)

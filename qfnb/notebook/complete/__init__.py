"""Inline completions in JupyterLab 4 / Notebook 7 (docs/completions.md): the Jupyter server extension
(:mod:`.handler`, ``POST {base_url}qfnb/complete``) behind the editor's provider (labextension/), the
context it builds (:mod:`.context`, :mod:`.scope`), who answers (:mod:`.backends`), the switch and
spending (:mod:`.switch`) and ``%qfcomplete`` (:mod:`.magic`). Importing this package loads neither
IPython nor jupyter_server: the server loads the handler when it loads the extension.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROUTE", "WARM_ROUTE", "_jupyter_server_extension_points", "_load_jupyter_server_extension"]

#: the handler's path below the Jupyter server's base URL
ROUTE = "qfnb/complete"
#: where the editor says a notebook opened (the engine loads, the notebook's context is read ahead)
WARM_ROUTE = "qfnb/complete/warm"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "qfnb.notebook.complete"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Add the completion handler to the Jupyter server (``jupyter server extension list`` shows it)."""
    # deferred: loads jupyter_server and tornado (importing the package does not)
    from jupyter_server.utils import url_path_join

    from qfnb.notebook.complete.handler import CompleteHandler, WarmHandler

    web_app = server_app.web_app
    route = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(".*$", [(route, CompleteHandler),
                                 (url_path_join(web_app.settings["base_url"], WARM_ROUTE), WarmHandler)])
    server_app.log.info("qfnb: inline completions at %s", route)

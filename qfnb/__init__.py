"""qfnb: the Qianfan LLM platform, native in Jupyter: the SDK layers (``protocol`` → ``_core`` →
``resources`` → … → ``notebook``), the embedded platform (``local``) and the official-SDK mirrors.
Public names are imported lazily so that ``import qfnb`` stays fast; ``%load_ext qfnb`` loads the magics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qfnb._core import plugins as _plugins
from qfnb.protocol.version import __version__

VERSION = __version__

#: the public names, by the module each is read from on first use
_LAZY_FROM = {
    "qfnb.resources": ("ChatCompletion", "Completion", "Embedding", "Plugin", "Text2Image", "Image2Text", "Reranker",
                       "Tokenizer", "Function", "IAM", "Messages", "QfResponse", "QfRole", "QfMessages", "Role",
                       "Response"),
    "qfnb.resources.v2_client": ("Qianfan",),
    "qfnb.resources.forecasting": ("forecast",),
    "qfnb._core.runtime.openai_recorded": ("openai_client", "async_openai_client"),
    "qfnb._core.globals": ("AK", "SK", "AccessKey", "SecretKey", "AccessToken", "enable_log", "disable_log"),
    "qfnb._core.config": ("get_config", "get_config_with_kwargs", "Config"),
    "qfnb.resources.defaults": ("default_model",),
    "qfnb.resources.where": ("backend",),
}
#: the submodules, each imported on first use (``import qfnb`` then ``qfnb.usage.frame()`` works)
_SUBMODULES = ("errors", "config", "consts", "version", "utils", "resources", "dataset", "trainer", "model",
               "evaluation", "usage", "agents", "local_models")
#: submodules reachable the same way that ``from qfnb import *`` leaves out (the notebook layer loads
#: IPython; the others are the layers below the public names)
_INNER = ("notebook", "client", "common", "cli", "protocol", "local")
_LAZY = {name: module for module, names in _LAZY_FROM.items() for name in names}
_LAZY.update({name: f"qfnb.{name}" for name in _SUBMODULES})

__all__ = [*sorted(_LAZY), "VERSION", "__version__", "load_ipython_extension", "unload_ipython_extension"]
_LAZY.update({name: f"qfnb.{name}" for name in _INNER})

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config as Config
    from qfnb.resources import IAM as IAM
    from qfnb.resources import ChatCompletion as ChatCompletion
    from qfnb.resources import Completion as Completion
    from qfnb.resources import Embedding as Embedding
    from qfnb.resources import Image2Text as Image2Text
    from qfnb.resources import Messages as Messages
    from qfnb.resources import Plugin as Plugin
    from qfnb.resources import QfResponse as QfResponse
    from qfnb.resources import Reranker as Reranker
    from qfnb.resources import Text2Image as Text2Image


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qfnb' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def _notebook_widget_renderer(desc: str) -> Any:
    """How a progress bar draws as a widget in a kernel."""
    from qfnb.notebook.widgets.progress_bar import WidgetRenderer  # deferred: loads ipywidgets (`import qfnb` does not)

    return WidgetRenderer(desc)


# the core's plug-in points (qfnb._core.plugins), filled once, before any other qfnb module runs
_plugins.widget_renderer = _notebook_widget_renderer


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext qfnb``: register the qfnb magics."""
    from qfnb.notebook.magics import load_ipython_extension as load  # deferred: loads IPython (`import qfnb` does not)

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    # deferred: loads IPython (`import qfnb` does not)
    from qfnb.notebook.magics import unload_ipython_extension as unload

    unload(ipython)

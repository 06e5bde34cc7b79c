"""The official SDK's ``qianfan.config``: one process-wide settings object, as its docs teach::

    qfnb.get_config().AK = "..."          # or .ak, .AccessKey / .ACCESS_KEY, .AUTH_TIMEOUT = 10
    qfnb.AK("...")                         # the older setter spelling of the same

Every client created afterwards uses what was set here: :meth:`qfnb._core.config.Config.from_env`
reads the environment, then lays these settings over it (keyword arguments of a client win
over both). Reading an attribute that was not set gives the value the environment gives now.

A mirror module: the settings object is defined in :mod:`qfnb._core.config`, the setters in
:mod:`qfnb._core.globals`. Its one definition of its own is the module's class,
:class:`_ConfigModule`: ``qfnb.config._GLOBAL_CONFIG = None`` forgets the settings, as in the
official SDK, so that name reads and writes the core's object.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from qfnb._core import config as _core_config
from qfnb._core.config import GlobalConfig, get_config, get_config_with_kwargs
from qfnb._core.config import GlobalConfig as Config  # the official name of the settings class
from qfnb._core.globals import AK, SK, AccessKey, AccessToken, SecretKey, encoding

if TYPE_CHECKING:  # what the module class below serves, declared for type checkers
    _GLOBAL_CONFIG: GlobalConfig | None

__all__ = ["AK", "SK", "AccessKey", "AccessToken", "Config", "GlobalConfig", "SecretKey", "encoding",
           "get_config", "get_config_with_kwargs"]


class _ConfigModule(types.ModuleType):
    """``qfnb.config``'s class: ``_GLOBAL_CONFIG`` is the core's process-wide settings object."""

    @property
    def _GLOBAL_CONFIG(self) -> GlobalConfig | None:
        return _core_config._GLOBAL_CONFIG

    @_GLOBAL_CONFIG.setter
    def _GLOBAL_CONFIG(self, value: GlobalConfig | None) -> None:
        _core_config._GLOBAL_CONFIG = value


sys.modules[__name__].__class__ = _ConfigModule

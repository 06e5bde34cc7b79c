"""The official SDK's ``qianfan.consts``: error codes, environment variable names, API paths,
defaults and the prompt enumerations, under the official names.

A mirror module: each namespace is defined where its values live, so the names here never
disagree with what qfnb sends: ``APIErrorCode`` in :mod:`qfnb.protocol.errors`, ``Consts`` in
:mod:`qfnb.protocol.wires.qianfan.routes`, ``Env`` and ``DefaultValue`` in :mod:`qfnb._core.globals` (the
defaults read from :class:`qfnb._core.config.Config`), ``DefaultLLMModel`` in
:mod:`qfnb.resources.defaults`, the prompt enumerations in :mod:`qfnb.resources.console.consts`.
"""

from qfnb._core.globals import DefaultValue, Env
from qfnb.protocol.errors import APIErrorCode
from qfnb.protocol.version import __version__ as VERSION  # qfnb's version (the official module's own here)
from qfnb.protocol.wires.qianfan.routes import Consts
from qfnb.resources.console.consts import PromptFrameworkType, PromptSceneType, PromptScoreStandard, PromptType
from qfnb.resources.defaults import DefaultLLMModel

__all__ = [
    "VERSION",
    "APIErrorCode",
    "Consts",
    "DefaultLLMModel",
    "DefaultValue",
    "Env",
    "PromptFrameworkType",
    "PromptSceneType",
    "PromptScoreStandard",
    "PromptType",
]

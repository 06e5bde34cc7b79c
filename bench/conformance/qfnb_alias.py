"""Pytest plugin for the conformance bench: ``import qianfan`` gives ``qfnb``.

Loaded with ``-p qfnb_alias`` in the qfnb run only. ``qianfan.tests.*`` (the
official tests and their helpers) still load from the official snapshot; every
other ``qianfan.x.y`` is the very module object ``qfnb.x.y``, so a test that
patches ``qianfan.x.y.name`` patches qfnb.

The official Flask mock server (``qianfan.tests.utils.mock_server``) is test
infrastructure, not the code under test: it is imported once against the
official SDK (its constants and id helper come from there), then every official
module is dropped before the alias is installed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence

_OFFICIAL = "qianfan"
_TARGET = "qfnb"
_MOCK = "qianfan.tests.utils.mock_server"


class _ExistingLoader(importlib.abc.Loader):
    """Hands back a module that is already imported under another name."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``qianfan[.x]`` to ``qfnb[.x]``; ``qianfan.tests`` to the snapshot."""

    def __init__(self, tests_root: str, mock: types.ModuleType | None) -> None:
        self._tests_root = tests_root  # .../python (holds qianfan/tests)
        self._mock = mock

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _OFFICIAL and not fullname.startswith(_OFFICIAL + "."):
            return None
        if fullname == _MOCK and self._mock is not None:
            return importlib.util.spec_from_loader(fullname, _ExistingLoader(self._mock))
        if fullname == _OFFICIAL + ".tests":
            return self._official_tests_spec(fullname)
        if fullname.startswith(_OFFICIAL + ".tests."):
            return None  # found under qianfan.tests.__path__ (pytest's rewriter first)
        real = _TARGET + fullname[len(_OFFICIAL) :]
        module = importlib.import_module(real)  # ImportError names the qfnb module
        is_pkg = hasattr(module, "__path__")
        spec = importlib.util.spec_from_loader(fullname, _ExistingLoader(module), is_package=is_pkg)
        return spec

    def _official_tests_spec(self, fullname: str) -> importlib.machinery.ModuleSpec | None:
        folder = os.path.join(self._tests_root, *fullname.split("."))
        return importlib.util.spec_from_file_location(
            fullname,
            os.path.join(folder, "__init__.py"),
            submodule_search_locations=[folder],
        )


def _preload_mock(root: str) -> types.ModuleType | None:
    """Import the official mock server against the official SDK, then forget the SDK."""
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        mock = importlib.import_module(_MOCK)
    finally:
        for name in [n for n in sys.modules if n == _OFFICIAL or n.startswith(_OFFICIAL + ".")]:
            del sys.modules[name]
    return mock


def install() -> None:
    """Install the alias; the snapshot's ``python/`` dir comes from ``QFNB_CONFORMANCE_ROOT``."""
    root = os.environ["QFNB_CONFORMANCE_ROOT"]
    mock = _preload_mock(root)
    sys.meta_path.insert(0, _AliasFinder(root, mock))


install()

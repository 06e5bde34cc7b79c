"""The official SDK's ``qianfan.errors``: qfnb's exception tree (:mod:`qfnb._core.errors`).

A mirror module: it re-exports the tree under qfnb's names and the official ones, so
``except qfnb.errors.QianfanError`` catches every qfnb error: ``QianfanError`` is
:class:`QfnbError`, ``InternalError`` is :class:`InternalServerError`, ``RequestTimeoutError`` is
:class:`TimeoutError`, ``QianfanRequestError`` is :class:`RequestError`. ``ArgumentNotFoundError``,
``BearerTokenExpiredError``, ``NotImplmentError`` (sic, the official spelling) and
``FileSizeOverflow`` are qfnb classes under the same base (defined with the tree).
"""

from qfnb._core.errors import *  # noqa: F403  (the tree's __all__ is what this module holds)
from qfnb._core.errors import __all__ as __all__

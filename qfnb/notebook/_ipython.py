"""Typed faces of the IPython helpers qfnb uses that IPython leaves unannotated.

Each name is IPython's own object (nothing is wrapped at run time), declared with the type it has:
``magic_arguments`` / ``argument`` decorate a magic and return it unchanged; ``display`` returns a
handle only when given a ``display_id`` (and none outside an IPython shell, where it just prints).
``line_magic`` / ``line_cell_magic`` are IPython's markers in their bare form (IPython annotates the
bare and the named form as one), and ``context_matcher`` IPython's (a ``functools.partial``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar, overload

from IPython.core import magic as _magic
from IPython.core import magic_arguments as _magic_arguments
from IPython.display import HTML as _HTML
from IPython.display import display as _display

from qfnb.notebook.magic_options import MagicOption
from qfnb.notebook.sampling import OPTIONS

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    """A decorator that returns the function it decorates (marking it)."""

    def __call__(self, func: F, /) -> F: ...


class _MagicArguments(Protocol):
    def __call__(self, name: str | None = None) -> Decorator: ...


class _Argument(Protocol):
    def __call__(self, *flags: str, **options: Any) -> Decorator: ...


class DisplayHandle(Protocol):
    """What ``display(..., display_id=True)`` returns: the output, to redraw in place."""

    def update(self, obj: object, **kwargs: Any) -> None: ...


class _Display(Protocol):
    @overload
    def __call__(self, *objs: object, display_id: Literal[True] | str, raw: bool = False,
                 metadata: dict[str, Any] | None = None) -> DisplayHandle | None: ...
    @overload
    def __call__(self, *objs: object, raw: bool = False, metadata: dict[str, Any] | None = None) -> None: ...


#: ``@magic_arguments()``: builds the magic's argparse parser from its ``@argument`` lines.
magic_arguments: _MagicArguments = _magic_arguments.magic_arguments
#: ``@argument(*flags, **options)``: one ``ArgumentParser.add_argument`` call.
argument: _Argument = _magic_arguments.argument
#: IPython's own parsing of a magic line (its splitter keeps quotes).
parse_argstring: Callable[[Callable[..., Any], str], argparse.Namespace] = _magic_arguments.parse_argstring
display: _Display = _display
HTML: Callable[[str], _HTML] = _HTML


def line_magic(func: F) -> F:
    """``@line_magic``: marks ``func`` as a line magic of its ``@magics_class``."""
    _magic.line_magic(func)  # records the magic and returns func itself
    return func


def line_cell_magic(func: F) -> F:
    """``@line_cell_magic``: marks ``func`` as a line and cell magic of its ``@magics_class``."""
    _magic.line_cell_magic(func)  # records the magic and returns func itself
    return func


def option_arguments(options: Sequence[MagicOption]) -> Decorator:
    """Give a magic the generated ``options`` (:mod:`qfnb.notebook.sampling`,
    :mod:`qfnb.notebook.magic_options`); among its ``@argument`` lines, they show there in its help."""

    def add(magic: F) -> F:
        for option in reversed(options):  # @argument lines apply bottom-up
            magic = argument(*option.flags, dest=option.field, type=option.type, help=option.help)(magic)
        return magic

    return add


def magic_arguments_of(*lines: Decorator) -> Decorator:
    """``@magic_arguments()`` over ``lines`` (``@argument`` lines, in the help's order), as one decorator:
    a magic's flags declared beside the code that reads them."""

    def add(magic: F) -> F:
        for line in reversed(lines):  # @argument lines apply bottom-up
            magic = line(magic)
        return magic_arguments()(magic)

    return add


#: the sampling options of the spec (``-t/--temperature``, ``--top-p``, ..., ``--max-tokens``)
sampling_arguments = option_arguments(OPTIONS)


def context_matcher() -> Decorator:
    """``@context_matcher()``: marks a completion matcher of IPython's Matcher API v2."""
    from IPython.core.completer import context_matcher as _context_matcher

    mark: Decorator = _context_matcher()  # sets the matcher's API version, priority and id
    return mark


class _Printed:
    """The handle of an output that was only printed (no IPython shell): updates go nowhere."""

    def update(self, obj: object, **kwargs: Any) -> None:
        return None


def live_display(obj: object, *, raw: bool = False) -> DisplayHandle:
    """``display(obj, display_id=True)``, to update in place; outside an IPython shell ``display``
    only prints ``obj`` and the updates go nowhere."""
    return display(obj, raw=raw, display_id=True) or _Printed()


def magic_parser(magic: Callable[..., Any]) -> argparse.ArgumentParser:
    """The parser ``@magic_arguments()`` attached to ``magic``."""
    parser = getattr(magic, "parser", None)
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"{magic!r} has no @magic_arguments parser")
    return parser

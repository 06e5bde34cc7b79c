"""``{var}`` interpolation for prompts that leaves every other brace alone.

Unlike ``str.format_map`` (jupyter-ai's approach, which breaks on any literal brace), only a
placeholder that is *exactly* a name, optionally followed by ``.attr``, ``[0]`` or ``['key']``,
is a placeholder. Everything else — JSON, dict literals, ``{}``, f-string code — is kept
verbatim. A placeholder whose name is not defined (or whose ``.attr`` / ``[key]`` fails) is an
:class:`InterpolationError` naming it: it is never sent literally. ``{{name}}`` writes a literal
``{name}``.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Mapping
from typing import Any

_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\[\]{}]*'|\"[^\"\[\]{}]*\")\])*"
_PLACEHOLDER = re.compile(r"\{\{(" + _PATH + r")\}\}|\{(" + _PATH + r")\}")
_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[([^\]]+)\]")

_MISSING = object()


class InterpolationError(NameError):
    """A ``{name}`` placeholder that cannot be filled."""

    def __init__(self, placeholder: str, reason: str) -> None:
        super().__init__(f"{{{placeholder}}}: {reason} (define it first, write {{{{{placeholder}}}}} for literal "
                         "braces, or pass --no-interp)")
        self.placeholder = placeholder


def _resolve(path: str, namespace: Mapping[str, Any]) -> Any:
    head = re.match(r"[A-Za-z_]\w*", path)
    assert head is not None  # guaranteed by _PATH
    value = namespace.get(head.group(0), _MISSING)
    if value is _MISSING:
        raise InterpolationError(path, f"no variable named {head.group(0)!r}")
    for m in _STEP.finditer(path, head.end()):
        attr, index = m.group(1), m.group(2)
        try:
            if attr is not None:
                if attr.startswith("__"):
                    raise InterpolationError(path, "dunder attributes are not interpolated")
                value = getattr(value, attr)
            else:
                value = value[ast.literal_eval(index)]
        except InterpolationError:
            raise
        except Exception as exc:
            raise InterpolationError(path, f"{type(exc).__name__}: {exc}") from None
    return value


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace every ``{name}`` placeholder from ``namespace``; an unfillable one raises
    :class:`InterpolationError`."""

    def sub(m: re.Match[str]) -> str:
        escaped, path = m.group(1), m.group(2)
        if escaped is not None:
            return "{" + escaped + "}"
        return str(_resolve(path, namespace))

    return _PLACEHOLDER.sub(sub, text)


def prompt_template(text: str, *, interpolated: bool = True) -> dict[str, Any]:
    """A cell's prompt as provenance records it: a short sha256 of the text as written (before
    ``{name}`` is filled) and the names it interpolates (never their values)."""
    found = _PLACEHOLDER.finditer(text) if interpolated else ()
    names = list(dict.fromkeys(m.group(2) for m in found if m.group(1) is None))  # each once, in order
    return {"hash": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], "variables": names}

"""``{var}`` interpolation for prompts that leaves every other brace alone.

Unlike ``str.format_map`` (jupyter-ai's approach, which breaks on any literal brace), only a
placeholder that is *exactly* a name from the namespace, optionally followed by ``.attr``,
``[0]`` or ``['key']``, is replaced. Everything else — JSON, dict literals, ``{}``, f-string
code, unknown names — is kept verbatim. ``{{name}}`` writes a literal ``{name}``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\[\]{}]*'|\"[^\"\[\]{}]*\")\])*"
_PLACEHOLDER = re.compile(r"\{\{(" + _PATH + r")\}\}|\{(" + _PATH + r")\}")
_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[([^\]]+)\]")

_MISSING = object()


def _resolve(path: str, namespace: Mapping[str, Any]) -> Any:
    head = re.match(r"[A-Za-z_]\w*", path)
    assert head is not None  # guaranteed by _PATH
    value = namespace.get(head.group(0), _MISSING)
    if value is _MISSING:
        return _MISSING
    for m in _STEP.finditer(path, head.end()):
        attr, index = m.group(1), m.group(2)
        try:
            if attr is not None:
                if attr.startswith("__"):
                    return _MISSING
                value = getattr(value, attr)
            else:
                value = value[ast.literal_eval(index)]
        except Exception:
            return _MISSING
    return value


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{name}`` placeholders whose root name exists in ``namespace``."""

    def sub(m: re.Match[str]) -> str:
        escaped, path = m.group(1), m.group(2)
        if escaped is not None:
            return "{" + escaped + "}"
        value = _resolve(path, namespace)
        return m.group(0) if value is _MISSING else str(value)

    return _PLACEHOLDER.sub(sub, text)

"""``%%qfchat --prompt NAME var=value ...``: a prompt saved on the platform, rendered as the cell's prompt."""

from __future__ import annotations

from collections.abc import Sequence

from IPython.core.error import UsageError

from qfnb._core.errors import QfnbError
from qfnb.resources.prompts.template import Prompt


def assignments(pairs: Sequence[str]) -> dict[str, str]:
    """``["topic=tea", "tone=dry"]`` as a dict; anything else is a usage error naming it."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--prompt takes the prompt's variables as name=value, got {pair!r}")
        values[name] = value
    return values


def saved_prompt_text(name: str, pairs: Sequence[str], cell: str) -> str:
    """The platform prompt ``name`` rendered with ``pairs``; a cell body follows it, after a blank line."""
    values = assignments(pairs)
    try:
        text, _negative = Prompt._hub_pull(name).render(**values)
    except QfnbError as exc:
        raise UsageError(f"--prompt {name}: {exc}") from None
    return f"{text}\n\n{cell.strip()}" if cell.strip() else text

"""What never leaves the machine in a cloud completion's context: names that look like secrets
(``*key*``, ``*token*``, ``*secret*``, ``*password*``, ...) with their values, and values shaped like
keys (long runs of letters and digits, ``sk-…``, ``bce-v3/…``, JWTs), wherever they stand. Pure.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "looks_secret", "redact"]

#: what a secret is replaced with
REDACTED = "<redacted>"

#: a name that holds a secret: ``api_key``, ``QIANFAN_TOKEN``, ``db_password``, ``client_secret``, ``passwd``
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw(or)?d|pwd|credential|auth|cookie|session_?id|private)")
#: ``name = value``, ``name: value`` or ``"name": value`` with a secret-looking name: the value up to the line's end
_ASSIGNED = re.compile(r"""(?P<head>(?P<q>["']?)(?P<name>[A-Za-z_][\w.-]*)(?P=q)\s*(?:=|:)\s*)(?P<value>[^\n]+)""")
#: a ``# name = value`` line of the kernel's names listing, or a keyword argument (``f(api_key="…")``)
_KWARG = re.compile(r"""(?P<head>\b(?P<name>[A-Za-z_]\w*)\s*=\s*)(?P<value>(?P<q>["'])[^"'\n]*(?P=q))""")
#: a mapping's entry (``{"token": "…"}``) anywhere on a line
_KEYED = re.compile(r"""(?P<head>(?P<q>["'])(?P<name>[^"'\n]{1,80})(?P=q)\s*:\s*)"""
                    r"""(?P<value>(?P<v>["'])[^"'\n]*(?P=v)|[^,}\n]+)""")
#: a value shaped like a key: a known key prefix, a JWT, or a long run of key characters with digits and letters
_KEY_SHAPED = re.compile(
    r"""(?x)
    \b(?:sk|pk|rk|ak|bce-v3|ALTAK|ghp|gho|github_pat|xox[abpr]|AKIA|ASIA|AIza)[-_/][\w\-/+=.]{8,}
    | \beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{4,}
    | (?<![\w/.])(?=[\w+/=-]*\d)(?=[\w+/=-]*[A-Za-z])[A-Za-z0-9+/=_-]{24,}(?![\w/.])
    """)


def looks_secret(name: str) -> bool:
    """Whether ``name`` is one a secret is kept under."""
    return _SECRET_NAME.search(name) is not None


def _value(found: re.Match[str]) -> str:
    if not looks_secret(found.group("name")):
        return found.group(0)
    return found.group("head") + REDACTED


def redact(text: str) -> str:
    """``text`` with every secret-named assignment's value and every key-shaped value replaced by
    :data:`REDACTED`."""
    text = _KEYED.sub(_value, _KWARG.sub(_value, text))
    text = "\n".join(_ASSIGNED.sub(_value, line, count=1) if REDACTED not in line else line
                     for line in text.split("\n"))
    return _KEY_SHAPED.sub(REDACTED, text)

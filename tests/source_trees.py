"""Source parsing for the tests that read the house's own code.

CPython 3.11 keeps the parser's AST-conversion depth in interpreter-wide state. If a garbage
collection inside one thread's ``ast.parse`` runs a finalizer and another thread (a server, a
traceback being formatted) parses meanwhile, the first parse fails with ``SystemError: AST
constructor recursion depth mismatch``. With the collector off, the conversion runs no Python code,
so no other thread can interleave.
"""

from __future__ import annotations

import ast
import gc


def parse_source(source: str) -> ast.Module:
    """``ast.parse`` that no other thread's parse can interleave with."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source)
    finally:
        if was_enabled:
            gc.enable()

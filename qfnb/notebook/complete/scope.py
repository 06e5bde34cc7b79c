"""The kernel's names in scope, for a completion's context: a small helper evaluated in the kernel as
a *silent* execute's user expression (no execution count, no history, nothing defined in the
user's namespace, no output), with a short timeout; a busy or gone kernel just gives no names.

The helper lists the user's names as Python comments the model reads (comments, so the model does not
take the listing's own shape for code to write): a DataFrame's columns, a function's signature, a
scalar's value. It needs no qfnb in the kernel; where qfnb is loaded it also reports
the kernel's ledger session (completions are counted under the notebook's session) and its budget
(what is left), and it charges the budget with the tokens completions spent since the last ask (the
helper's one deliberate effect).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["HELPER", "KernelState", "expression", "kernel_state", "parse_reply"]

log = logging.getLogger("qfnb.notebook.complete")

#: seconds a completion waits for the kernel's answer
SCOPE_TIMEOUT = 0.6

#: the helper's source: one function, defined in a fresh dict (never in the user's namespace)
HELPER = r'''
def describe(ns, charge):
    import inspect, json, sys, types
    skip = {"In", "Out", "exit", "quit", "get_ipython", "open"}
    lines = []
    for name, value in list(ns.items())[-300:]:
        if name.startswith("_") or name in skip or isinstance(value, types.ModuleType):
            continue
        kind = type(value).__name__
        try:
            if kind == "DataFrame" and hasattr(value, "columns"):
                cols = ", ".join(repr(c) for c in list(value.columns)[:40])
                lines.append(f"# {name}: DataFrame ({len(value)} rows), columns: {cols}")
            elif kind == "Series" and hasattr(value, "dtype"):
                lines.append(f"# {name}: Series ({len(value)} values, name {value.name!r}, dtype {value.dtype})")
            elif inspect.isclass(value):
                lines.append(f"# class {name}{inspect.signature(value)}")
            elif inspect.isfunction(value) or inspect.isbuiltin(value):
                lines.append(f"# def {name}{inspect.signature(value)}")
            elif isinstance(value, (bool, int, float, complex)) or (isinstance(value, str) and len(value) <= 60):
                lines.append(f"# {name} = {value!r} ({kind})")
            elif isinstance(value, dict):
                keys = ", ".join(repr(k) for k in list(value)[:20])
                lines.append(f"# {name}: dict ({len(value)} keys): {keys}")
            elif isinstance(value, (list, tuple, set)):
                lines.append(f"# {name}: {kind} of {len(value)} items")
            else:
                lines.append(f"# {name}: {type(value).__module__}.{type(value).__qualname__}")
        except Exception:
            lines.append(f"# {name}: {kind}")
    session = budget = None
    ledger = sys.modules.get("qfnb._core.record.ledger")
    if ledger is not None:
        session = ledger.SESSION
    spend = sys.modules.get("qfnb._core.record.budget")
    found = spend.active_budget() if spend is not None else None
    if found is not None:
        if charge > 0:
            found.settle(None, charge, 0.0)
        if found.tokens is not None:
            budget = found.tokens - found.spent_tokens - found.reserved_tokens
    names = "\n".join(["# the kernel's variables, from the cells that ran:", *lines[-120:]]) if lines else ""
    return json.dumps({"names": names, "session": session, "tokens_left": budget})
'''


def expression(charge: int = 0) -> str:
    """The user expression that runs :data:`HELPER` on the user's namespace, charging ``charge``
    tokens to the kernel's qfnb budget."""
    return f"(lambda d: (exec({HELPER!r}, d), d['describe'](globals(), {int(charge)}))[1])({{}})"


@dataclass(frozen=True)
class KernelState:
    """What the helper reported: the names as Python, the ledger session, the budget's tokens left."""

    names: str = ""
    session: str | None = None
    tokens_left: int | None = None


def parse_reply(content: dict[str, Any]) -> KernelState | None:
    """The helper's answer in an ``execute_reply``'s content (None: it failed)."""
    found = (content.get("user_expressions") or {}).get("qfnb") or {}
    if found.get("status") != "ok":
        return None
    try:
        data = json.loads(ast.literal_eval(found["data"]["text/plain"]))
    except (KeyError, ValueError, SyntaxError, TypeError):
        return None
    left = data.get("tokens_left")
    return KernelState(str(data.get("names") or ""), data.get("session") or None,
                       int(left) if isinstance(left, int | float) else None)


async def kernel_state(manager: Any, charge: int = 0, timeout: float = SCOPE_TIMEOUT) -> KernelState | None:
    """Ask the kernel of ``manager`` (a jupyter_client kernel manager) for its names; None when it
    does not answer within ``timeout`` seconds (busy running a cell) or fails."""
    client = manager.client()
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        msg_id = client.execute("", silent=True, store_history=False, allow_stdin=False,
                                user_expressions={"qfnb": expression(charge)})
        async with asyncio.timeout(timeout):
            while True:
                reply = client.get_shell_msg(timeout=timeout)
                if inspect.isawaitable(reply):
                    reply = await reply
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    return parse_reply(reply.get("content") or {})
    except TimeoutError:
        log.debug("the kernel did not answer the completion's scope helper within %.1f s", timeout)
        return None
    except Exception:  # a kernel that cannot answer gives a completion no names
        log.debug("the kernel's scope helper failed", exc_info=True)
        return None
    finally:
        client.stop_channels()

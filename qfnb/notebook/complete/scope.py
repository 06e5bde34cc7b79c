"""The kernel's names in scope, for a completion's context, read without running the user's code.

A small helper is evaluated in the kernel as a *silent* execute's user expression (no execution
count, no history, nothing defined in the user's namespace, no output). It lists the user's names as
Python comments the model reads (comments, so the model does not take the listing's own shape for
code to write), and it never calls into a user's object:

- a value's type is ``type(value)``; its name, module and qualified name are read through ``type``'s
  own descriptors (never ``__class__``, ``__getattr__``, a metaclass's attribute or a property);
- a DataFrame's columns and shape only for the *exact* pandas / polars ``DataFrame`` (and pandas
  ``Series``, numpy ``ndarray``), whose classes are looked up in their modules' own dicts; a label
  is listed only when it is an exact ``str`` or ``int``;
- a signature only of a plain Python function, written from its code object (a default shown only
  when it is an exact builtin scalar);
- a value is shown only for exact builtin scalars (``bool``, ``int``, ``float``, short ``str``), a
  length only for exact builtin containers: nothing of the user's is iterated, measured or repr'd.

It is one bounded call (the last :data:`MAX_NAMES` names), sent only to an *idle* kernel (a kernel
running a cell gives no names: the helper is never queued behind it), at most one in flight per
kernel, and only for a user the server's Authorizer lets execute code in kernels (:mod:`.handler`).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HELPER", "KernelState", "Scopes", "expression", "kernel_state", "parse_reply"]

log = logging.getLogger("qfnb.notebook.complete")

#: seconds a completion waits for the kernel's answer
SCOPE_TIMEOUT = 0.6
#: the most names the helper reads (the last defined)
MAX_NAMES = 300

#: the helper's source: one function, defined in a fresh dict (never in the user's namespace)
HELPER = r'''
def describe(ns, limit):
    import sys, types
    T = type
    own = type.__dict__
    name_of, qual_of = own["__name__"].__get__, own["__qualname__"].__get__
    module_of, dict_of = own["__module__"].__get__, own["__dict__"].__get__
    Module, Function = types.ModuleType, types.FunctionType

    def one_of(kind, *kinds):  # identity only: ``in`` or ``==`` would call a metaclass's __eq__
        for each in kinds:
            if kind is each:
                return True
        return False

    def exact(module, attr):
        found = sys.modules.get(module)
        if T(found) is not Module:
            return None
        return dict.get(found.__dict__, attr)

    pandas_frame, polars_frame = exact("pandas", "DataFrame"), exact("polars", "DataFrame")
    series, ndarray = exact("pandas", "Series"), exact("numpy", "ndarray")

    def label(value):
        kind = T(value)
        if kind is str:
            return repr(value[:80])
        if kind is int and -2**63 < value < 2**63:
            return repr(value)
        return None

    def scalar(value):
        kind = T(value)
        if kind is int and value.bit_length() > 64:
            return "a large int"
        if one_of(kind, bool, int, float) or (kind is str and len(value) <= 60):
            return f"{value!r} ({name_of(kind)})"
        return None

    def type_name(kind):
        module = module_of(kind)
        qual = qual_of(kind)
        return f"{module}.{qual}" if T(module) is str and module != "builtins" else qual

    def annotation(value):
        if T(value) is str:
            return value[:60]
        if T(value) is T:
            return type_name(value)
        return None

    def signature(fn):
        code = fn.__code__
        names = code.co_varnames
        positional = code.co_argcount
        defaults = fn.__defaults__ or ()
        kwdefaults = fn.__kwdefaults__ or {}
        notes = fn.__annotations__
        notes = notes if T(notes) is dict else {}
        def one(name, default, has_default):
            text = name
            note = annotation(dict.get(notes, name))
            if note:
                text += f": {note}"
            if has_default:
                shown = scalar(default)
                text += " = " + (repr(default) if shown is not None else "...")
            return text
        parts = []
        first_default = positional - len(defaults)
        for i in range(positional):
            parts.append(one(names[i], defaults[i - first_default] if i >= first_default else None,
                             i >= first_default))
            if code.co_posonlyargcount and i == code.co_posonlyargcount - 1:
                parts.append("/")
        at = positional
        if code.co_flags & 4:
            parts.append("*" + names[at + code.co_kwonlyargcount])
        elif code.co_kwonlyargcount:
            parts.append("*")
        for name in names[at:at + code.co_kwonlyargcount]:
            has = T(kwdefaults) is dict and name in kwdefaults
            parts.append(one(name, dict.get(kwdefaults, name) if has else None, has))
        if code.co_flags & 8:
            parts.append("**" + names[at + code.co_kwonlyargcount + bool(code.co_flags & 4)])
        ret = annotation(dict.get(notes, "return"))
        return "(" + ", ".join(parts) + ")" + (f" -> {ret}" if ret else "")

    def labels(values):
        shown = [text for text in (label(v) for v in values[:40]) if text is not None]
        return ", ".join(shown)

    def line(name, value):
        kind = T(value)
        if kind is Module:
            return None
        if kind is not None and one_of(kind, pandas_frame, polars_frame):
            rows, width = value.shape
            columns = value.columns
            columns = list(columns) if kind is polars_frame else columns[:40].tolist()
            return f"# {name}: DataFrame ({rows} rows), columns: {labels(columns)}"
        if series is not None and kind is series:
            named = label(value.name)
            return (f"# {name}: Series ({value.shape[0]} values" + (f", name {named}" if named else "")
                    + f", dtype {value.dtype})")
        if ndarray is not None and kind is ndarray:
            return f"# {name}: ndarray (shape {tuple(value.shape)}, dtype {value.dtype})"
        if kind is Function:
            return f"# def {name}{signature(value)}"
        if kind is T:
            return f"# class {name}"
        shown = scalar(value)
        if shown is not None:
            return f"# {name} = {shown}"
        if kind is dict:
            keys = ", ".join(repr(k[:40]) for k in list(value)[:20] if T(k) is str)
            return f"# {name}: dict ({len(value)} keys): {keys}"
        if one_of(kind, list, tuple, set, frozenset, str, bytes):
            return f"# {name}: {name_of(kind)} of {len(value)} items"
        return f"# {name}: {type_name(kind)}"

    if T(ns) is not dict:
        return ""
    skip = {"In", "Out", "exit", "quit", "get_ipython", "open"}
    lines = []
    for name, value in list(dict.items(ns))[-limit:]:
        if T(name) is not str or name.startswith("_") or name in skip:
            continue
        try:
            found = line(name, value)
        except Exception:
            found = f"# {name}: {name_of(T(value))}"
        if found:
            lines.append(found)
    return "\n".join(["# the kernel's variables, from the cells that ran:", *lines[-120:]]) if lines else ""
'''


def expression() -> str:
    """The user expression that runs :data:`HELPER` on the user's namespace."""
    return f"(lambda d: (exec({HELPER!r}, d), d['describe'](globals(), {MAX_NAMES}))[1])({{}})"


@dataclass(frozen=True)
class KernelState:
    """What the helper reported: the kernel's names as Python comments."""

    names: str = ""


def parse_reply(content: dict[str, Any]) -> KernelState | None:
    """The helper's answer in an ``execute_reply``'s content (None: it failed)."""
    found = (content.get("user_expressions") or {}).get("qfnb") or {}
    if found.get("status") != "ok":
        return None
    try:
        names = ast.literal_eval(found["data"]["text/plain"])
    except (KeyError, ValueError, SyntaxError, TypeError):
        return None
    return KernelState(names) if isinstance(names, str) else None


@dataclass
class Scopes:
    """The helper's runs in one Jupyter server: at most one in flight per kernel (a second ask
    shares it, none is queued behind it)."""

    running: dict[str, asyncio.Future[KernelState | None]] = field(default_factory=dict)

    async def ask(self, kernel: str, manager: Any, timeout: float = SCOPE_TIMEOUT) -> KernelState | None:
        """The names of ``kernel`` (its ``manager``), None when it is busy, does not answer in time or fails."""
        found = self.running.get(kernel)
        if found is None:
            if getattr(manager, "execution_state", None) != "idle":
                return None  # running a cell (or starting): the helper would wait behind it
            found = self.running[kernel] = asyncio.ensure_future(kernel_state(manager, timeout))
            found.add_done_callback(lambda _: self.running.pop(kernel, None))
        return await asyncio.shield(found)


async def kernel_state(manager: Any, timeout: float = SCOPE_TIMEOUT) -> KernelState | None:
    """Ask the kernel of ``manager`` (a jupyter_client kernel manager) for its names; None when it
    does not answer within ``timeout`` seconds or fails."""
    try:
        client = manager.client()
    except Exception:  # a kernel that cannot answer gives a completion no names
        log.debug("no client for the kernel's scope helper", exc_info=True)
        return None
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        msg_id = client.execute("", silent=True, store_history=False, allow_stdin=False,
                                user_expressions={"qfnb": expression()})
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

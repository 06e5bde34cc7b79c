"""The console half of ``tools/generate.py``: public classes from request builders.

For each function in ``qfnb/resources/console/builders/<name>.py`` marked
``@surface("Class.Sub.method")`` this writes, into ``qfnb/resources/console/<name>.py``, the
classmethod pair ``method`` / ``amethod`` on that class: the builder's parameters in its
order, then ``config=`` / ``retry=`` (keyword-only) and ``**kwargs``. Each builds the request
with the builder in the caller's thread, then sends it (``asend``; the blocking twin is the
async one's token rewrite). The classes and their docstrings are the builder module's
``CLASSES``. Generated modules keep their annotations evaluated (no ``from __future__``), so
``inspect.signature`` shows real types.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from codegen import ROOT, Param, header, params_of, render_from, signature, unasync
from spec.answers import ANSWERS

CONSOLE = ROOT / "qfnb/resources/console"
PACKAGE = "qfnb.resources.console.builders"
#: what every generated console module imports (besides the names its builders' signatures use)
BASE_IMPORTS = {"typing": {"Any"}, "qfnb._core.config": {"Config"}, "qfnb._core.http.response": {"QfResponse"},
                "qfnb._core.http.retry": {"RetryPolicy"}}
CALL_PARAMS = [Param("config", "Config | None", "None", "kw"), Param("retry", "RetryPolicy | None", "None", "kw")]


def absolute(node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = PACKAGE.split(".")[:len(PACKAGE.split(".")) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def names_in(nodes: list[ast.expr | None]) -> set[str]:
    return {n.id for node in nodes if node is not None for n in ast.walk(node) if isinstance(n, ast.Name)}


def builders(tree: ast.Module) -> list[tuple[ast.FunctionDef, str]]:
    """``(builder, "Class.Sub.method")`` for each ``@surface`` builder, in source order."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "surface":
                found.append((node, ast.literal_eval(deco.args[0])))
    return found


def answer_of(fn: ast.FunctionDef) -> str | None:
    """The answer model a builder's ``@surface(..., answer="...")`` names (in
    ``qfnb.protocol.wires.qianfan.answers``)."""
    for deco in fn.decorator_list:
        if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "surface":
            for kw in deco.keywords:
                if kw.arg == "answer":
                    name = str(ast.literal_eval(kw.value))
                    if name not in {m.name for m in ANSWERS}:
                        raise SystemExit(f"{fn.name}: no answer model {name!r} in tools/spec/answers.py")
                    return name
    return None


def unshadow(params: list[Param], shadowed: set[str]) -> list[Param]:
    """``list[str]`` -> ``builtins.list[str]`` where the class has a method ``list``."""
    if not shadowed:
        return params
    pattern = re.compile(r"(?<![\w.])(" + "|".join(sorted(shadowed)) + r")\b")
    fix = lambda t: pattern.sub(r"builtins.\1", t) if t else t  # noqa: E731
    return [Param(p.name, fix(p.annotation), fix(p.default), p.kind) for p in params]


def method(fn: ast.FunctionDef, name: str, text: str, indent: str, blocking: bool, shadowed: set[str]) -> str:
    """The classmethod ``a{name}`` that sends what ``fn`` builds, or (``blocking``) its twin ``{name}``."""
    params = unshadow(params_of(fn, text), shadowed)
    if any(p.name in ("config", "retry", "cls") for p in params):
        raise SystemExit(f"{fn.name}: config/retry/cls are the generated method's own parameters")
    var_kw = [p for p in params if p.kind == "**"]
    own = [p for p in params if p.kind != "**"]
    marker = [] if any(p.kind == "*" for p in own) else [Param("", kind="*")]
    args = [p.name if p.kind == "pos" else f"{p.name}={p.name}" for p in own if p.name]
    body = indent + "    "
    doc = ast.get_source_segment(text, fn.body[0]) or '""""""'
    doc = doc.replace("\n    ", "\n" + body)
    answer = answer_of(fn)
    returns = f'QfResponse["{answer}"]' if answer else "QfResponse"  # the model is named: see console_module
    out = [f"{indent}@classmethod\n",
           signature(indent, f"def {name}" if blocking else f"async def a{name}",
                     ["cls", *own, *marker, *CALL_PARAMS, *var_kw], f") -> {returns}:"),
           f"{body}{doc}\n"]
    out.append(send_lines(fn, body, args, var_kw[0].name if var_kw else None, answer))
    text = "".join(out)
    return unasync(text) if blocking else text


def send_lines(fn: ast.FunctionDef, body: str, args: list[str], kwargs: str | None, answer: str | None) -> str:
    """Build the request (the body fields of ``**kwargs`` to the builder), then send it (the
    config overrides of ``**kwargs`` to ``asend``); a call with an answer model names it on the response."""
    built = signature(body, f"request = build.{fn.name}", [*args, f"**body_fields({kwargs})"] if kwargs else args, ")")
    sent = f"await asend(request, config=config, retry=retry{f', overrides={kwargs}' if kwargs else ''})"
    if answer:
        return built + f'{body}response = {sent}\n{body}return response.with_answer_named("{answer}")\n'
    return built + f"{body}return {sent}\n"


@dataclass
class Builders:
    """One builder module: its classes (``CLASSES``) and ``(builder, "Class.method")`` calls."""

    source: Path
    text: str
    tree: ast.Module
    classes: dict[str, str]
    calls: list[tuple[ast.FunctionDef, str]]


def load(source: Path) -> Builders:
    text = source.read_text()
    tree = ast.parse(text)
    classes: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CLASSES":
            classes = ast.literal_eval(node.value)
    return Builders(source, text, tree, classes, builders(tree))


def contribute(mods: list[Builders]) -> dict[str, list[tuple[str, str]]]:
    """Calls for a class declared in another builder module go on a mixin (``DataTasksCalls``
    for ``builders/data_tasks.py``) that the class's generated module subclasses; returns
    ``{class: [(module, mixin), ...]}``."""
    declared = [p for m in mods for _, p in m.calls]
    twice = sorted({p for p in declared if declared.count(p) > 1})
    if twice:
        raise SystemExit(f"declared by more than one @surface builder (one home per call): {twice}")
    home = {c for m in mods for c in m.classes if "." not in c}
    bases: dict[str, list[tuple[str, str]]] = {}
    for m in mods:
        foreign = sorted({p.split(".")[0] for _, p in m.calls} - set(m.classes))
        if not foreign:
            continue
        cls = foreign[0]
        if len(foreign) > 1 or cls not in home or any(p.count(".") != 1 for _, p in m.calls if p.startswith(cls)):
            raise SystemExit(f"{m.source.name}: calls for {foreign}: one class declared in another module's "
                             "CLASSES, top-level methods only")
        mixin = "".join(w.capitalize() for w in m.source.stem.split("_")) + "Calls"
        m.classes = {mixin: f"``{cls}``'s calls built in ``builders/{m.source.name}`` (a base of ``{cls}``).",
                     **m.classes}
        m.calls = [(fn, f"{mixin}.{p.split('.', 1)[1]}" if p.split(".")[0] == cls else p) for fn, p in m.calls]
        bases.setdefault(cls, []).append((m.source.stem, mixin))
    return bases


def console_module(m: Builders, bases: dict[str, list[tuple[str, str]]]) -> str:
    source, text, tree, classes, calls = m.source, m.text, m.tree, m.classes, m.calls
    used = names_in([n for fn, _ in calls for n in [
        *(a.annotation for a in [*fn.args.args, *fn.args.kwonlyargs]), *fn.args.defaults, *fn.args.kw_defaults,
        *([fn.args.kwarg.annotation] if fn.args.kwarg else [])]])
    imports = {k: set(v) for k, v in BASE_IMPORTS.items()}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names = {a.asname or a.name for a in node.names} & used
            if names:
                imports.setdefault(absolute(node), set()).update(names)
    methods = {public.rsplit(".", 1)[-1] for _, public in calls}
    shadowed = {n for n in methods if hasattr(builtins, n)}
    # the answer models are named, not imported at run time (about 0.4 s of pydantic classes: importing a
    # resource stays light; ``resp.parsed`` imports them); mypy reads them from the TYPE_CHECKING import
    answers = sorted({a for fn, _ in calls if (a := answer_of(fn))})
    names = textwrap.indent(render_from("qfnb.protocol.wires.qianfan.answers", answers), "    ")
    guarded = [f"if TYPE_CHECKING:  # pragma: no cover\n{names}\n"] if answers else []
    if answers:
        imports["typing"].add("TYPE_CHECKING")
    std = sorted(m for m in imports if not m.startswith("qfnb"))
    first = sorted(m for m in imports if m.startswith("qfnb"))
    doc = ast.get_source_segment(text, tree.body[0].value) if isinstance(tree.body[0], ast.Expr) else '""""""'
    out = [header(source), f"{doc}\n\n", "import builtins\n" if shadowed else "",
           *(render_from(m, imports[m]) for m in std), "\n",
           *(render_from(m, imports[m]) for m in first), "\n",
           *sorted(["from .sending.sender import asend, body_fields, send\n",
                    f"from .builders import {source.stem} as build\n",
                    *(f"from .{stem} import {mixin}\n" for c in classes for stem, mixin in bases.get(c, []))],
                   key=lambda line: line.split()[1].lower()),
           "\n", *guarded, f"__all__ = [{', '.join(repr(c) for c in classes if '.' not in c)}]\n".replace("'", '"')]
    for dotted, cls_doc in classes.items():
        depth = dotted.count(".")
        indent = "    " * depth
        parents = ", ".join(mixin for _, mixin in sorted(bases.get(dotted, [])))
        out.append(("\n\n" if depth == 0 else "\n") + f"{indent}class {dotted.rsplit('.', 1)[-1]}"
                   + (f"({parents})" if parents else "") + ":\n"
                   f'{indent}    """{cls_doc}"""\n')
        for fn, public in calls:
            owner, name = public.rsplit(".", 1)
            if owner != dotted:
                continue
            out.extend(["\n", method(fn, name, text, indent + "    ", True, shadowed),
                        "\n", method(fn, name, text, indent + "    ", False, shadowed)])
    known = set(classes)
    stray = [public for _, public in calls if public.rsplit(".", 1)[0] not in known]
    if stray:
        raise SystemExit(f"{source.name}: no class in CLASSES for {stray}")
    return "".join(out)


def console_targets() -> dict[Path, str]:
    mods = [load(s) for s in sorted((CONSOLE / "builders").glob("*.py")) if s.name != "__init__.py"]
    bases = contribute(mods)
    return {CONSOLE / m.source.name: console_module(m, bases) for m in mods}

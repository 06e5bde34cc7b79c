"""Import circles and deferred imports in qfnb: ``python tools/import_circles.py [--list]``.

import-linter's contracts leave out ``if TYPE_CHECKING:`` imports (they cannot fail at run
time), so a split-off file that annotates with the class it was carved from forms a circle no
contract sees. This reads the graph with them (grimp, as import-linter does; grimp records
imports written inside functions too) and prints, per package, every set of sibling modules
that import each other; exit 1 when there is one.

It also finds the imports between qfnb modules written inside a function (``--list`` names
them). Each one is there to keep an entry point light (``import qfnb``, ``%load_ext qfnb``, ``qfnb
--help``, ...) and says why in a ``# deferred: <why>`` comment, on the import's own lines, on the
line above it or above the run of imports it is in; exit 1 names each one without it.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def sibling_graph(graph: grimp.ImportGraph, package: str) -> dict[str, set[str]]:
    """The children of ``package`` and which others each imports (through any module inside it)."""
    children = sorted(graph.find_children(package))
    edges: dict[str, set[str]] = {c: set() for c in children}

    def owner(module: str) -> str | None:
        return next((c for c in children if module == c or module.startswith(c + ".")), None)

    for module in graph.modules:
        importer = owner(module)
        if importer is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            target = owner(imported)
            if target is not None and target != importer:
                edges[importer].add(target)
    return edges


def _reach(edges: Mapping[str, Set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(edges[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return seen


def circles(edges: Mapping[str, Set[str]]) -> Iterator[list[str]]:
    """The sets of more than one node that all reach each other."""
    reach = {node: _reach(edges, node) for node in edges}
    done: set[str] = set()
    for node in sorted(edges):
        if node in done or node not in reach[node]:
            continue
        members = sorted(n for n in reach[node] if node in reach[n])
        done.update(members)
        yield members


def all_circles(package: str = "qfnb") -> list[tuple[str, list[str]]]:
    """``(package, members)`` for every circle among siblings, ``TYPE_CHECKING`` imports included,
    then ``("modules", members)`` for one among modules that only closes through a package's
    ``__init__`` (``a -> pkg -> b -> a``: no two siblings import each other directly)."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=False, cache_dir=None)
    packages = sorted(m for m in graph.modules if graph.find_children(m))
    found = [(p, c) for p in packages for c in circles(sibling_graph(graph, p))]
    modules = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    through_init = [c for c in circles(modules) if any(m in packages for m in c)]
    return found + [("modules", c) for c in through_init]


#: the reason a function-level import gives: ``# deferred: it loads pandas`` (any words after the colon)
REASON = re.compile(r"#\s*deferred:\s*\S")


def _imports_qfnb(node: ast.Import | ast.ImportFrom) -> bool:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [("." * node.level) + (node.module or "")]
    return any(n == "qfnb" or n.startswith(("qfnb.", ".")) for n in names)


def _runs(body: list[ast.stmt]) -> Iterator[list[ast.Import | ast.ImportFrom]]:
    """The runs of consecutive import statements in one block."""
    run: list[ast.Import | ast.ImportFrom] = []
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            run.append(stmt)
            continue
        if run:
            yield run
        run = []
    if run:
        yield run


def _inside_functions(tree: ast.AST) -> Iterator[ast.AST]:
    """The functions and the statements inside them (nested ones too), each once; expressions,
    which hold no import, are not entered."""
    todo = [(tree, False)]
    while todo:
        node, inside = todo.pop()
        inside = inside or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        if inside:
            yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                todo.extend((child, inside) for child in children)


def deferred_imports(root: Path = ROOT) -> list[tuple[str, int, str, bool]]:
    """``(file, line, source, has_reason)`` of each import of a qfnb module written inside a function;
    ``has_reason``: a ``# deferred: <why>`` comment on its lines, on the line above, or above the run of
    imports it is in."""
    found: set[tuple[str, int, str, bool]] = set()
    for path in sorted((root / "qfnb").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for block in _inside_functions(ast.parse(text)):
            for field in ("body", "orelse", "finalbody"):
                body = getattr(block, field, None)
                for run in _runs(body if isinstance(body, list) else []):
                    above = lines[run[0].lineno - 2].strip() if run[0].lineno > 1 else ""
                    for node in run:
                        if not _imports_qfnb(node):
                            continue
                        own = lines[node.lineno - 1:node.end_lineno or node.lineno]
                        just_above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                        reason = any(REASON.match(x) for x in (above, just_above)) or any(
                            REASON.search(line) for line in own)
                        found.add((str(path.relative_to(root)), node.lineno, own[0].strip(), reason))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="name each import written inside a function")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to read (default: this one)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root))
    found = all_circles()
    for package, members in found:
        print(f"circle in {package}: " + ", ".join(m.rsplit(".", 1)[-1] if package != "modules" else m
                                                   for m in members))
    deferred = deferred_imports(args.root)
    if args.list:
        for file, line, source, _ in deferred:
            print(f"{file}:{line}: {source}")
    unexplained = [(file, line, source) for file, line, source, reason in deferred if not reason]
    for file, line, source in unexplained:
        print(f"{file}:{line}: {source}: an import inside a function says why (`# deferred: <why>`) "
              "or moves to the module's top")
    print(f"{len(found)} circles; {len(deferred)} imports of qfnb modules inside functions, "
          f"{len(unexplained)} without a reason")
    return 1 if found or unexplained else 0

if __name__ == "__main__":
    sys.exit(main())

"""Import circles and deferred imports in qfnb: ``python tools/import_circles.py [--list]``.

import-linter's contracts leave out ``if TYPE_CHECKING:`` imports (they cannot fail at run
time), so a split-off file that annotates with the class it was carved from forms a circle no
contract sees. This reads the graph with them (grimp, as import-linter does; grimp records
imports written inside functions too) and prints, per package, every set of sibling modules
that import each other; exit 1 when there is one.

It also counts the imports between qfnb modules written inside a function (``--list`` names
them): each one is there to keep an import light and says so in a comment.
"""

from __future__ import annotations

import argparse
import ast
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


def deferred_imports(root: Path = ROOT) -> list[tuple[str, int, str]]:
    """``(file, line, source)`` of each import of a qfnb module written inside a function."""
    found: list[tuple[str, int, str]] = []
    for path in sorted((root / "qfnb").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        lines = path.read_text(encoding="utf-8").splitlines()
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [("." * node.level) + (node.module or "")]
                else:
                    continue
                if any(n == "qfnb" or n.startswith(("qfnb.", ".")) for n in names):
                    found.append((str(path.relative_to(root)), node.lineno, lines[node.lineno - 1].strip()))
    return sorted(set(found))


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
        for file, line, source in deferred:
            print(f"{file}:{line}: {source}")
    print(f"{len(found)} circles; {len(deferred)} imports of qfnb modules inside functions")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

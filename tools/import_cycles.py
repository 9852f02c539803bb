"""Import cycles in the molmovie package: strongly connected components of its import graph.

Every ``import`` and ``from ... import`` counts, at module level and inside
functions (a deferred import closes a circle as surely as one at the top, only
later); imports under ``if TYPE_CHECKING:`` never run and do not count.
Relative imports are resolved against the importing module's package.
An edge goes to the most specific module named: ``from .io import dataset``
to ``molmovie.io.dataset`` when that is a module, ``from .io import Measurement``
to ``molmovie.io`` (a package import counts as its ``__init__``); the parent
packages Python also runs on the way are not counted, or every package would
be a circle with its own modules.

Usage::

    python tools/import_cycles.py [SRC_PACKAGE_DIR] [--top-level]

``SRC_PACKAGE_DIR`` defaults to ``src/molmovie`` beside this folder;
``--top-level`` leaves out the imports inside functions (those that run only
when called). Prints each component of more than one module with the import
lines that close it, and exits 1 when there is one, 0 otherwise
(``tests/test_import_cycles.py`` runs it with the tests).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file for every ``.py`` under the package folder ``root`` (a package is its ``__init__.py``)."""
    base = root.parent
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` tests ``TYPE_CHECKING`` (or ``typing.TYPE_CHECKING``): imports there never run."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, top_level: bool):
    """(node, in_function) for every import statement in the tree."""
    stack = [(node, False) for node in tree.body]
    while stack:
        node, nested = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, nested
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):  # for the type checker only: never run
            stack.extend((child, nested) for child in node.orelse)
            continue
        deeper = nested or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))  # a class body runs on import
        if top_level and deeper:
            continue
        stack.extend((child, deeper) for child in ast.iter_child_nodes(node))


def import_graph(root: Path, top_level: bool = False) -> dict[str, dict[str, list[str]]]:
    """Module -> {imported module: ["file:line", ...]}, within the package folder ``root``."""
    modules = module_files(root)
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, nested in _imports(tree, top_level):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    anchor = package.split(".")
                    if node.level > 1:
                        anchor = anchor[: len(anchor) - (node.level - 1)]
                    stem = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                for alias in node.names:
                    sub = f"{stem}.{alias.name}"
                    targets.append(sub if sub in modules else stem)
            for target in targets:
                # "import a.b.c" of a name that is not a module: its longest module prefix
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    where = f"{path.relative_to(root.parent)}:{node.lineno}" + (" (in a function)" if nested else "")
                    lines = graph[name].setdefault(target, [])
                    if where not in lines:
                        lines.append(where)
    return graph


def strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(sorted(component))
    return sorted(out, key=lambda c: (-len(c), c))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1] / "src" / "molmovie"))
    parser.add_argument("--top-level", action="store_true", help="leave out imports inside functions")
    args = parser.parse_args(argv)
    root = Path(args.root)
    graph = import_graph(root, top_level=args.top_level)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    edges = sum(len(v) for v in graph.values())
    print(f"{len(graph)} modules, {edges} import edges under {root}; {len(cycles)} import cycle(s)")
    for k, component in enumerate(cycles, 1):
        print(f"\ncycle {k}: {len(component)} modules: {', '.join(component)}")
        members = set(component)
        for name in component:
            for target, where in sorted(graph[name].items()):
                if target in members:
                    print(f"  {name} -> {target}   ({'; '.join(where)})")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())

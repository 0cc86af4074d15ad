"""The import graph of the package, and its cycles.

Every ``import`` and ``from ... import`` of every module counts, at module
level or inside a function (a deferred import is still a dependency), except
those under ``if TYPE_CHECKING:``.  A name imported from a package that only
re-exports it counts as an import of the module that defines it, so a
package's ``__init__`` re-exporting its submodules is no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "mlinfn_compress"


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root`` (the folder holding ``mlinfn_compress``) by dotted name."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(tree: ast.AST, name: str, is_package: bool) -> Iterator[tuple[str, str | None]]:
    """(module, imported name or None) of every import outside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    here = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                yield base, alias.name


def _defined_in(package: str, name: str, mods: dict[str, Path]) -> str:
    """The module a package's ``__init__`` takes ``name`` from (the package itself when it defines it)."""
    tree = ast.parse(mods[package].read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            source = node.module or ""
            if node.level:
                parts = package.split(".")
                source = ".".join([*parts[: len(parts) - (node.level - 1)], *([source] if source else [])])
            if f"{source}.{name}" in mods:
                return f"{source}.{name}"
            return _defined_in(source, name, mods) if source in mods and mods[source].name == "__init__.py" else source
    return package


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports."""
    mods = modules(root)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for module, imported in _imports(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            if not module.startswith(PACKAGE):
                continue
            if imported is not None and f"{module}.{imported}" in mods:
                target = f"{module}.{imported}"
            elif imported is not None and module in mods and mods[module].name == "__init__.py":
                target = _defined_in(module, imported, mods)
            else:
                target = module
            if target in mods and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)

"""The rules ARCHITECTURE.md states about the code itself, checked on the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

from mlinfn_compress.testing.imports import cycles, graph, modules

SRC = Path(__file__).resolve().parents[1] / "src"


def test_no_module_imports_itself_back() -> None:
    found = cycles(graph(SRC))
    assert not found, f"import cycles: {found}"


def test_the_cycle_check_sees_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "mlinfn_compress"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from mlinfn_compress.b import g\n")
    (package / "b.py").write_text("from mlinfn_compress import a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mlinfn_compress.a import f\n"
    )
    assert cycles(graph(tmp_path)) == [["mlinfn_compress.a", "mlinfn_compress.b"]]


def test_no_private_name_is_imported_across_modules() -> None:
    roots = [SRC, SRC.parent / "tests", SRC.parent / "benchmarks", SRC.parent / "examples"]
    offenders = []
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("mlinfn_compress", "conftest")):
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    if private:
                        offenders.append(f"{path.relative_to(SRC.parent)}: {node.module} {private}")
    assert not offenders, offenders


def test_every_module_opens_with_a_docstring_and_stays_small() -> None:
    for name, path in modules(SRC).items():
        tree = ast.parse(path.read_text())
        lines = len(path.read_text().splitlines())
        assert ast.get_docstring(tree) or (path.name == "__init__.py" and not tree.body), f"{name} has no docstring"
        assert lines <= 560, f"{name} has {lines} lines"

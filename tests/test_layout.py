"""The layout promise of issue 13: small modules and small functions, in the package and plugins.

No module of ``selfinstruct_async/`` or ``plugins/`` is over 500 lines and no function or
method in them is over 60 (decorators excluded, docstring included). A module that grows
past the limit is split by responsibility (``docs/architecture.md`` lists the modules);
a function, into named steps.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = (ROOT / "selfinstruct_async", ROOT / "plugins")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for root in SOURCE_ROOTS for p in root.rglob("*.py") if "build" not in p.parts)


def _function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every function and method in ``path``."""
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                end = child.end_lineno or child.lineno
                found.append((prefix + child.name, child.lineno, end - child.lineno + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return found


def test_the_layout_check_sees_the_package_and_the_plugins() -> None:
    modules = {p.relative_to(ROOT).as_posix() for p in _modules()}
    assert "selfinstruct_async/checkpoint/store.py" in modules
    assert "plugins/selfinstruct_plugins/similarity.py" in modules
    assert len(modules) > 50


def test_function_lengths_count_every_line_of_nested_and_async_definitions(
    tmp_path: Path,
) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(3))
    sample = tmp_path / "sample.py"
    sample.write_text(
        f"class A:\n    async def run(self):\n{body}\n\n        def inner():\n"
        "            return 1\n        return inner\n",
        encoding="utf-8",
    )
    assert _function_lengths(sample) == [("A.run", 2, 8), ("A.run.inner", 7, 2)]


def test_no_module_is_over_500_lines() -> None:
    too_long = {
        p.relative_to(ROOT).as_posix(): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}, f"modules over {MAX_MODULE_LINES} lines (split them): {too_long}"


@pytest.mark.parametrize("root", SOURCE_ROOTS, ids=lambda p: p.name)
def test_no_function_is_over_60_lines(root: Path) -> None:
    too_long = [
        f"{p.relative_to(ROOT).as_posix()}:{line} {name} ({n} lines)"
        for p in _modules()
        if p.is_relative_to(root)
        for name, line, n in _function_lengths(p)
        if n > MAX_FUNCTION_LINES
    ]
    assert too_long == [], f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"

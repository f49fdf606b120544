"""Every function fits on a screen and every module stays readable (issue #18): at most 60 lines
per function (its decorators and docstring included) and 400 per file, over src/."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every function and method in the file."""
    out = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                out.append((prefix + child.name, start, (child.end_lineno or start) - start + 1))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(path.read_text(encoding="utf-8")), "")
    return out


def test_functions_fit_on_a_screen():
    long = [
        f"{path.relative_to(SRC)}:{line} {name}: {n} lines"
        for path in sorted(SRC.rglob("*.py"))
        for name, line, n in function_lengths(path)
        if n > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_modules_stay_short():
    big = [
        f"{path.relative_to(SRC)}: {n} lines"
        for path in sorted(SRC.rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    ]
    assert not big, f"modules over {MAX_FILE_LINES} lines:\n" + "\n".join(big)

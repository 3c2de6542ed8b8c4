"""Size bounds of production code, checked by ``make lint``: no module over 600 lines, no function
over 80 lines (ruff's C901 bounds complexity at 15 beside it). A reader holds one module in mind.

Usage: ``python scripts/check_sizes.py [PATH ...]`` (default: layers, functions, cli). Exit 1 and one
line per offence when a bound is passed."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
DEFAULT_ROOTS = ("layers", "functions", "cli")


def python_files(roots: Iterable[str]) -> Iterator[Path]:
    for root in roots:
        path = Path(root)
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def offences(path: Path) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    if lines > MAX_MODULE_LINES:
        yield f"{path}: {lines} lines (at most {MAX_MODULE_LINES} a module)"
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{path}:{node.lineno}: {node.name} is {length} lines (at most {MAX_FUNCTION_LINES} a function)"


def main(argv: list[str]) -> int:
    found = [offence for path in python_files(argv or DEFAULT_ROOTS) for offence in offences(path)]
    print("\n".join(found) or "sizes: every module and function within bounds")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

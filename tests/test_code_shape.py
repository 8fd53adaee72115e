"""The code stays easy to read: no function over 60 lines, no class over 200, in batchcall/."""

from __future__ import annotations

import ast
from pathlib import Path

import batchcall

PACKAGE = Path(batchcall.__file__).parent
FUNCTION_LINES = 60
CLASS_LINES = 200


def _too_long() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                limit = CLASS_LINES if isinstance(node, ast.ClassDef) else FUNCTION_LINES
                if lines > limit:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} {lines}")
    return found


def test_no_function_or_class_is_too_long_to_read_at_once():
    """Every function fits in 60 lines and every class in 200, so each reads as one idea."""
    assert _too_long() == []

"""Tests share helpers through harness/ and helper modules, never through conftest files or
other test modules (pytest loads those itself; importing them runs their fixtures' module
code twice and ties tests to each other's internals)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_no_module_imports_a_conftest_or_a_test_module() -> None:
    offending = [
        f"{path.relative_to(REPO)}: {module}"
        for folder in ("tests", "harness", "bench", "scripts")
        for path in sorted((REPO / folder).rglob("*.py"))
        for module in _imported_modules(path)
        if module.split(".")[0] == "tests"
        and any(part == "conftest" or part.startswith("test_") for part in module.split("."))
    ]
    assert sorted(set(offending)) == []

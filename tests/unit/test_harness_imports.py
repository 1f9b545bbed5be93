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


# Landed on main after the move to harness/ and not migrated yet: the browser and CLI tests
# reuse the e2e package's fixtures and Platform, the real-content tests reuse two handler
# test helpers. Each is an import to move (to tests/conftest.py, harness/ or a support
# module), not a pattern to keep; remove the entry when it is moved.
NOT_YET_MIGRATED = {
    "tests/browser/conftest.py: tests.e2e.conftest",
    "tests/browser/test_browser.py: tests.e2e.conftest",
    "tests/e2e/test_cli.py: tests.e2e.conftest",
    "tests/worker/test_real_content.py: tests.worker.test_handlers",
    "tests/worker/test_content_units.py: tests.worker.test_units",
}


def test_no_module_imports_a_conftest_or_a_test_module() -> None:
    offending = [
        f"{path.relative_to(REPO)}: {module}"
        for folder in ("tests", "harness", "bench", "scripts")
        for path in sorted((REPO / folder).rglob("*.py"))
        for module in _imported_modules(path)
        if module.split(".")[0] == "tests"
        and any(part == "conftest" or part.startswith("test_") for part in module.split("."))
    ]
    assert sorted(set(offending) - NOT_YET_MIGRATED) == []
    assert set(offending) >= NOT_YET_MIGRATED, "migrated: drop it from NOT_YET_MIGRATED"

"""The project's packages import each other without cycles.

The graph comes from grimp, which reads every import statement, including those inside
functions (a local import is how a cycle usually hides). Imports under ``TYPE_CHECKING``
are left out: they never run, so they cannot form a cycle at import time.
"""

from __future__ import annotations

import grimp

PACKAGES = ("shared", "api_service", "transcode_service")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every cycle found by a depth-first search, each as the path that closes it."""
    found: list[list[str]] = []
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(module: str) -> None:
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported in on_stack:
                found.append([*stack[stack.index(imported) :], imported])
            elif imported not in done:
                visit(imported)
        stack.pop()
        on_stack.discard(module)
        done.add(module)

    for module in sorted(graph.modules):
        if module not in done:
            visit(module)
    return found


def test_no_import_cycle_among_the_projects_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert len(graph.modules) > 40  # the graph really covers the packages
    assert _cycles(graph) == []


def test_the_cycle_search_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y", "a.z", "a.x"]]

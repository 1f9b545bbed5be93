"""The README's configuration table is generated from the Settings model; keep them equal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts" / "settings_table.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["settings_table"] = module
    spec.loader.exec_module(module)
    return module


def test_readme_lists_every_setting_as_generated() -> None:
    generator = _load_generator()
    readme = (ROOT / "README.md").read_text()
    assert generator.updated(readme) == readme, (
        "README configuration table is stale: run "
        ".venv/bin/python scripts/settings_table.py --update README.md"
    )
    for _, env, _ in generator.rows():
        assert f"`{env}`" in readme

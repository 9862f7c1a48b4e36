"""The store's place in the layers: above the core, below panes_api / tail / the TUI; it never
imports prompt_toolkit or a web framework (type-only imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

STORE = Path(__file__).resolve().parent.parent / "lazycelery" / "store"
ABOVE = ("lazycelery.tail", "lazycelery.tui", "lazycelery.panes_api", "lazycelery.commands",
         "lazycelery.cli", "lazycelery.demo", "prompt_toolkit", "flask", "fastapi", "aiohttp",
         "starlette", "tornado", "django")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(STORE.glob("*.py")), ids=lambda p: p.name)
def test_store_modules_import_nothing_above_them(path: Path) -> None:
    bad = {name for name in _imports(path) if name.startswith(ABOVE)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_importing_every_store_module_loads_no_ui() -> None:
    modules = [f"lazycelery.store.{p.stem}" for p in STORE.glob("*.py") if p.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('prompt_toolkit', "
            "'lazycelery.tui', 'lazycelery.tail'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "[]"

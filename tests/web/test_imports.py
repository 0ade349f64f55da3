"""The web package has no import cycle: views reach the per-app state through ``web.state``,
never the factory (``web.app``), as in Flask's tutorial."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hybridshop.web

WEB = Path(hybridshop.web.__file__).parent


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_views_and_helpers_do_not_import_the_app_factory() -> None:
    for path in [*WEB.glob("views/*.py"), WEB / "state.py", WEB / "orders.py"]:
        assert "hybridshop.web.app" not in _imported(path), path.name


def test_each_view_imports_on_its_own() -> None:
    """With a cycle, importing a view first fails or half-initialises the factory module."""
    for view in ("health", "manage", "storefront"):
        code = f"import hybridshop.web.views.{view} as v; assert v.bp.name"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

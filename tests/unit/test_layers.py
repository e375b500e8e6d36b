"""The import direction of DESIGN.md: ``connectors`` (registries and
gateways) imports nothing from ``idp``, so a connector can be reused,
tested and reasoned about without the application."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names,
    at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_connectors_module_names_idp():
    offenders = {str(path.relative_to(CONNECTORS.parent)): sorted(
                     name for name in _imported_modules(path)
                     if name == "idp" or name.startswith("idp."))
                 for path in sorted(CONNECTORS.rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_every_connectors_module_imports_with_idp_blocked():
    """Imported in a fresh interpreter where ``import idp`` fails, so an
    import through a third module is caught too."""
    script = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['idp'] = None\n"
        "import connectors\n"
        "for info in pkgutil.walk_packages(connectors.__path__, 'connectors.'):\n"
        "    importlib.import_module(info.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=CONNECTORS.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

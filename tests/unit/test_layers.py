"""The import direction of DESIGN.md: ``connectors`` (registries and
gateways) imports nothing from ``idp``, so a connector can be reused,
tested and reasoned about without the application; inside ``idp``, the
protocol, sessions, authorizations and accounts never import what is built
on them, and no blueprint imports another."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"
IDP = CONNECTORS.parent / "idp"

#: Package (or top-level module) of ``idp`` -> the packages it must not
#: import, at any depth: each arrow of the seams runs one way (issue 8).
FORBIDDEN = {
    "oidc": {"authn", "portal", "admin", "cli"},
    "sessions": {"oidc", "authn", "portal", "admin", "cli"},
    "authorizations": {"oidc", "sessions", "authn", "portal", "admin", "cli"},
    "accounts": {"oidc", "sessions", "authorizations", "authn", "portal", "cli"},
    "clients": {"oidc", "sessions", "authorizations", "authn", "portal", "admin", "cli"},
    "sms_budget": {"authn", "accounts", "portal", "admin", "cli"},
}
#: Modules that define a blueprint; none may import another.
BLUEPRINTS = ("idp.oidc.blueprint", "idp.authn.views", "idp.authn.kiosk.blueprint",
              "idp.portal.blueprint")


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


def _idp_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of ``idp``."""
    modules = {}
    for path in sorted(IDP.rglob("*.py")):
        parts = path.relative_to(IDP.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_no_idp_package_imports_what_is_built_on_it():
    offenders = {}
    for name, path in _idp_modules().items():
        top = name.split(".")[1] if "." in name else None
        banned = FORBIDDEN.get(top, set())
        wrong = sorted(module for module in _imported_modules(path)
                       if module.startswith("idp.") and module.split(".")[1] in banned)
        if wrong:
            offenders[name] = wrong
    assert offenders == {}


def test_no_blueprint_imports_another():
    def owner(module: str) -> str | None:
        return next((bp for bp in BLUEPRINTS if module == bp or module.startswith(bp + ".")),
                    None)

    offenders = {}
    for name, path in _idp_modules().items():
        mine = owner(name)
        if mine is None:
            continue
        others = sorted(module for module in _imported_modules(path)
                        if owner(module) not in (None, mine))
        if others:
            offenders[name] = others
    assert offenders == {}

"""Where the wheel's packages come from; everything else is in pyproject.toml.

The top-level packages are ``idp``, ``connectors`` and ``migration``.
The top-level ``themes/`` and ``config/`` folders of the source tree are
carried inside the ``idp`` package as ``idp.themes`` and ``idp.defaults``, so
an installed wheel reads its pages and ``default.toml`` through
``importlib.resources`` exactly as a source checkout does. pyproject.toml
cannot add such mapped packages to the ones it finds, hence this file.
"""

from setuptools import find_namespace_packages, setup

#: Package name -> folder of the source tree it is built from.
MAPPED_PACKAGES = {"idp.themes": "themes", "idp.defaults": "config"}


def _mapped(name: str, folder: str) -> list[str]:
    """``name`` and, as its subpackages, every folder below ``folder`` (a
    theme's ``templates/``...), which setuptools otherwise warns it ignores."""
    return [name] + [f"{name}.{sub}" for sub in find_namespace_packages(where=folder)]


setup(
    packages=find_namespace_packages(include=["idp*", "connectors*", "migration*"])
    + [package for name, folder in MAPPED_PACKAGES.items() for package in _mapped(name, folder)],
    package_dir=MAPPED_PACKAGES,
)

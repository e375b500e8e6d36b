"""A built wheel runs on its own (issue 8): built from a copy of the source
tree and installed with its dependencies into a fresh virtualenv, the
provider upgrades its schema and serves discovery, its keys and the login
page with the theme's files and the Chinese catalog, from a folder outside
the checkout. Before, ``config/default.toml`` and ``themes/`` were read from
beside the package and were not in the wheel: an installed provider did not
start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import SECRETS, free_port
from tests.helpers import CHECKOUT, running_server

#: What the build does not need: environments, caches, generated output.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "node_modules", ".cache", "instance",
                                     "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".ruff_cache")
#: Dependencies come from the package index pip is configured with, as for
#: ``make install``; from pip's cache after the first run.
INSTALL_TIMEOUT = 600


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    """Run ``args``; a failure shows its output."""
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel built from this tree; its ``bin``."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    # A copy, so the build's own folders (build/, *.egg-info) stay out of
    # the checkout and nothing left there from an earlier build gets in.
    shutil.copytree(CHECKOUT, source, ignore=NOT_SOURCES)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
          str(work / "dist"), str(source)], timeout=INSTALL_TIMEOUT)
    (wheel,) = (work / "dist").glob("idp-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
          "--quiet", str(wheel)], timeout=INSTALL_TIMEOUT)
    return venv / "bin"


@pytest.fixture(scope="module")
def outside(tmp_path_factory, installed, database_url) -> tuple[Path, dict]:
    """A working folder outside the checkout and the environment of a
    provider installed there (the run's database and Redis)."""
    folder = tmp_path_factory.mktemp("outside")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IDP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({
        "PATH": f"{installed}{os.pathsep}{env.get('PATH', '')}",
        "IDP_INSTANCE_PATH": str(folder / "instance"),
        "IDP_DATABASE_URL": database_url or "",
        "IDP_REDIS_URL": os.environ.get("IDP_TEST_REDIS_URL", ""),
        "IDP_STORE_PREFIX": f"idpwheel:{folder.name}:",
        **{f"IDP_SECRETS__{k.upper()}": v for k, v in SECRETS.items()},
    })
    return folder, env


def test_the_installed_package_is_the_wheel(installed, outside):
    folder, env = outside
    where = _run([installed / "python", "-c",
                  "import idp, idp.defaults, idp.themes; "
                  "print(idp.__file__, idp.defaults.__file__, idp.themes.__file__)"],
                 cwd=folder, env=env).stdout.split()
    site = str(installed.parent / "lib")
    assert all(path.startswith(site) for path in where), where


@pytest.fixture(scope="module")
def served(installed, outside) -> Iterator[str]:
    """``idp db upgrade``, then ``idp serve``, both of the wheel; the issuer URL."""
    folder, env = outside
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(env, IDP_ISSUER=url)
    upgraded = _run([installed / "idp", "db", "upgrade"], cwd=folder, env=env, timeout=120)
    assert upgraded.stdout.startswith("database schema at revision ")
    with running_server(
            [installed / "idp", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--threads", "2"], env, folder / "serve.log",
            f"{url}/.well-known/openid-configuration", cwd=folder):
        yield url


def test_discovery_and_keys(served):
    metadata = requests.get(f"{served}/.well-known/openid-configuration", timeout=5).json()
    assert metadata["issuer"] == served
    keys = requests.get(metadata["jwks_uri"], timeout=5).json()["keys"]
    assert {key["alg"] for key in keys} >= {"ES256"}


def test_login_page_with_theme_and_chinese_catalog(served):
    page = requests.get(f"{served}/login", headers={"Accept-Language": "zh-CN"}, timeout=5)
    assert page.status_code == 200
    assert '<html lang="zh-CN"' in page.text and "登录" in page.text
    style = requests.get(f"{served}/static/style.css", timeout=5)
    assert style.status_code == 200
    assert style.content == (CHECKOUT / "themes" / "default" / "static" / "style.css").read_bytes()


def test_the_demo_says_it_needs_a_source_checkout(installed, outside):
    folder, env = outside
    demo = subprocess.run([installed / "idp", "demo", "--port", str(free_port())],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert demo.returncode == 1
    assert "only a source checkout holds" in demo.stderr, demo.stderr

"""The ``idp`` command line: exit codes, messages, and what it stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from idp.cli import main
from tests.conftest import SECRETS


@pytest.fixture
def cli_env(tmp_path, database_url):
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": database_url or "",
           "IDP_REDIS_URL": os.environ.get("IDP_TEST_REDIS_URL", ""),
           "IDP_STORE_PREFIX": f"idpcli:{tmp_path.name}:",
           **{f"IDP_SECRETS__{k.upper()}": v for k, v in SECRETS.items()}}
    return env


def run(env, *args):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_clients_create_prints_secret_once_and_stores_hash(cli_env):
    result = run(cli_env, "clients", "create", "--name", "Portal",
                 "--redirect-uri", "https://portal.example.test/cb",
                 "--post-logout-redirect-uri", "https://portal.example.test/", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["client_id"] and len(data["client_secret"]) >= 43
    listed = run(cli_env, "clients", "list", "--json")
    assert data["client_id"] in listed.output
    assert data["client_secret"] not in listed.output
    from idp import create_app
    from idp.clients.models import Client
    from idp.extensions import db

    app = create_app({"instance_path": cli_env["IDP_INSTANCE_PATH"],
                      "database_url": cli_env["IDP_DATABASE_URL"],
                      "secrets": dict(SECRETS)})
    with app.app_context():
        row = db.session.query(Client).filter_by(client_id=data["client_id"]).one()
        assert row.secret_hash and data["client_secret"] not in row.secret_hash
        db.session.remove()
        db.engine.dispose()


def test_public_client_has_no_secret(cli_env):
    result = run(cli_env, "clients", "create", "--name", "App", "--public",
                 "--redirect-uri", "com.example.app:/cb", "--json")
    assert result.exit_code == 0, result.output
    assert "client_secret" not in json.loads(result.output)


@pytest.mark.parametrize("args,message", [
    (["--redirect-uri", "not a url"], "redirect URI"),
    (["--redirect-uri", "http://portal.example.test/cb"], "loopback"),
    (["--redirect-uri", "https://p.example.test/cb#x"], "fragment"),
    (["--redirect-uri", "https://p.example.test/cb", "--grant-type", "password"],
     "not supported"),
    (["--public", "--grant-type", "client_credentials"], "client_credentials"),
    ([], "redirect URI"),
])
def test_clients_create_errors(cli_env, args, message):
    result = CliRunner().invoke(main, ["clients", "create", "--name", "X", *args],
                                env=cli_env)
    assert result.exit_code != 0
    assert message in result.output


def test_users_create(cli_env):
    ok = run(cli_env, "users", "create", "--username", "alice", "--password", "long password here")
    assert ok.exit_code == 0 and "alice" in ok.output
    dup = CliRunner().invoke(main, ["users", "create", "--username", "ALICE",
                                    "--password", "long password here"], env=cli_env)
    assert dup.exit_code != 0 and "already taken" in dup.output
    weak = CliRunner().invoke(main, ["users", "create", "--username", "bob",
                                     "--password", "x"], env=cli_env)
    assert weak.exit_code != 0 and "at least" in weak.output


def test_keys_rotate_keeps_old_key_published(cli_env):
    from idp import create_app

    settings = {"instance_path": cli_env["IDP_INSTANCE_PATH"],
                "database_url": cli_env["IDP_DATABASE_URL"], "secrets": dict(SECRETS)}
    app = create_app(settings)
    with app.test_client() as http:
        before = {k["kid"] for k in http.get("/jwks.json").json["keys"]}
    result = run(cli_env, "keys", "rotate", "--alg", "ES256")
    assert result.exit_code == 0 and "new ES256 key" in result.output
    app.extensions["idp"].keys.invalidate()
    with app.app_context():
        active = app.extensions["idp"].keys.signing_key("ES256").kid
    with app.test_client() as http:
        after = {k["kid"] for k in http.get("/jwks.json").json["keys"]}
    assert before < after and active in after and active not in before
    with app.app_context():
        from idp.extensions import db

        db.session.remove()
        db.engine.dispose()
    bad = CliRunner().invoke(main, ["keys", "rotate", "--alg", "HS256"], env=cli_env)
    assert bad.exit_code != 0 and "unsupported" in bad.output


def test_production_mode_refuses_missing_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_MODE="production", IDP_ISSUER="https://id.example.test",
               IDP_INSTANCE_PATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "idp.cli", "clients", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "secrets.secret_key" in result.stderr and "IDP_SECRETS__TOKEN_HMAC_KEY" in result.stderr
    assert not (tmp_path / "secrets.json").exists()


def test_development_mode_generates_and_keeps_secrets(tmp_path):
    from idp.config import load_settings

    first = load_settings({"instance_path": str(tmp_path)}, environ={})
    second = load_settings({"instance_path": str(tmp_path)}, environ={})
    assert first["secrets"]["secret_key"] == second["secrets"]["secret_key"]
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("args,message", [
    (["--redirect-uri", "https://p.example.test/*"], "wildcards"),
    (["--redirect-uri", "https://user:pw@p.example.test/cb"], "user information"),
    (["--redirect-uri", "https://p.example.test/cb", "--alg", "HS256"], "ES256, ES384"),
])
def test_clients_create_more_errors(cli_env, args, message):
    result = CliRunner().invoke(main, ["clients", "create", "--name", "X", *args], env=cli_env)
    assert result.exit_code != 0 and message in result.output


def test_private_jwks_are_refused(cli_env, tmp_path):
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    result = CliRunner().invoke(main, [
        "clients", "create", "--name", "J", "--grant-type", "client_credentials",
        "--auth-method", "private_key_jwt", "--jwks", str(private)], env=cli_env)
    assert result.exit_code != 0 and "private key material" in result.output


def test_unreachable_database_is_a_clean_error(cli_env):
    env = dict(cli_env, IDP_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(main, ["clients", "list"], env=env)
    assert result.exit_code != 0
    assert "database cannot be reached" in result.output


def test_db_upgrade_reports_the_revision(cli_env):
    from alembic.script import ScriptDirectory

    from idp.db import DIRECTORY

    head = ScriptDirectory(DIRECTORY).get_current_head()
    result = run(cli_env, "db", "upgrade")
    assert result.exit_code == 0 and f"revision {head} " in result.output
    assert "--app" not in run(cli_env, "--help").output


def test_new_clients_are_pairwise_unless_told(cli_env):
    result = run(cli_env, "clients", "create", "--name", "Pairwise",
                 "--redirect-uri", "https://pw.example.test/cb", "--min-acr", "L2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["subject_type"], data["sector_identifier"]) == ("pairwise", "pw.example.test")
    assert data["min_acr"] == "L2" and "idcard" not in data["scope"].split()
    result = run(cli_env, "clients", "create", "--name", "Public", "--subject-type", "public",
                 "--redirect-uri", "https://pub.example.test/cb", "--json")
    assert json.loads(result.output)["subject_type"] == "public"
    bad = run(cli_env, "clients", "create", "--name", "Bad", "--min-acr", "gold",
              "--redirect-uri", "https://bad.example.test/cb")
    assert bad.exit_code != 0 and "not a level" in bad.output

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


def test_clients_create_issue_7_options(cli_env):
    """Issue 7: --strict-auth-method, --resource-server and --allowed-origin
    (repeatable) are stored and shown by create (JSON and text) and list --json."""
    result = run(cli_env, "clients", "create", "--name", "Strict", "--strict-auth-method",
                 "--auth-method", "client_secret_post", "--resource-server",
                 "--allowed-origin", "https://App.example.test:443",
                 "--allowed-origin", "http://127.0.0.1:3000",
                 "--redirect-uri", "https://strict.example.test/cb", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    origins = ["https://app.example.test", "http://127.0.0.1:3000"]
    assert (created["strict_auth_method"], created["resource_server"]) == (True, True)
    assert created["allowed_origins"] == origins
    listed = {c["client_id"]: c for c in json.loads(run(cli_env, "clients", "list",
                                                        "--json").output)}
    assert listed[created["client_id"]]["strict_auth_method"] is True
    assert listed[created["client_id"]]["resource_server"] is True
    assert listed[created["client_id"]]["allowed_origins"] == origins
    plain = run(cli_env, "clients", "create", "--name", "Plain", "--redirect-uri",
                "https://plain.example.test/cb")
    assert plain.exit_code == 0
    for line in ("strict_auth_method: False", "resource_server: False", "allowed_origins: []"):
        assert line in plain.output.splitlines()
    bad = run(cli_env, "clients", "create", "--name", "Bad", "--allowed-origin",
              "https://spa.example.test/app", "--redirect-uri", "https://bad.example.test/cb")
    assert bad.exit_code != 0
    assert "allowed origin 'https://spa.example.test/app' must have no path" in bad.output
    bad = run(cli_env, "clients", "create", "--name", "Bad", "--public", "--strict-auth-method",
              "--redirect-uri", "https://bad.example.test/cb")
    assert bad.exit_code != 0
    assert "client_secret_basic and client_secret_post only" in bad.output


def test_clients_without_alg_get_the_configured_default(cli_env):
    """Issue 7: without --alg the ID token algorithm is tokens.default_signing_alg,
    RS256 (OIDC Dynamic Client Registration §2); --alg ES256 is kept."""
    default = json.loads(run(cli_env, "clients", "create", "--name", "Default",
                             "--redirect-uri", "https://d.example.test/cb", "--json").output)
    assert default["id_token_signed_response_alg"] == "RS256"
    chosen = json.loads(run(cli_env, "clients", "create", "--name", "Chosen", "--alg", "ES256",
                            "--redirect-uri", "https://c.example.test/cb", "--json").output)
    assert chosen["id_token_signed_response_alg"] == "ES256"
    env = dict(cli_env, IDP_TOKENS__DEFAULT_SIGNING_ALG="EdDSA")
    configured = json.loads(run(env, "clients", "create", "--name", "Configured",
                                "--redirect-uri", "https://e.example.test/cb", "--json").output)
    assert configured["id_token_signed_response_alg"] == "EdDSA"

"""The ``idp`` command line: exit codes, messages, and what it stores."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

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
    result = run(cli_env, "clients", "create", "--name", "Civil Affairs",
                 "--redirect-uri", "https://rp.example.test/cb",
                 "--post-logout-redirect-uri", "https://rp.example.test/", "--json")
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
    (["--redirect-uri", "http://rp.example.test/cb"], "loopback"),
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


def _password_works(cli_env, username: str, password: str) -> bool:
    from idp import create_app
    from idp.accounts.service import check_password
    from idp.extensions import db

    app = create_app({"instance_path": cli_env["IDP_INSTANCE_PATH"],
                      "database_url": cli_env["IDP_DATABASE_URL"], "secrets": dict(SECRETS)})
    with app.app_context():
        _account, ok = check_password(app.extensions["idp"], username, password)
        db.session.remove()
        db.engine.dispose()
    return ok


def test_users_create_reads_the_password_from_stdin(cli_env):
    ok = CliRunner().invoke(main, ["users", "create", "--username", "alice",
                                   "--password-stdin"], input="long password here\n", env=cli_env)
    assert ok.exit_code == 0, ok.output
    assert "created account alice" in ok.output and "long password here" not in ok.output
    # Exactly the line, without its newline; spaces inside are kept.
    assert _password_works(cli_env, "alice", "long password here")
    dup = CliRunner().invoke(main, ["users", "create", "--username", "ALICE",
                                    "--password-stdin"], input="long password here\n", env=cli_env)
    assert dup.exit_code == 1 and "username: This username is already taken." in dup.output
    weak = CliRunner().invoke(main, ["users", "create", "--username", "bob",
                                     "--password-stdin"], input="x\n", env=cli_env)
    assert weak.exit_code == 1
    assert "password: Password must be at least 8 characters." in weak.output
    empty = CliRunner().invoke(main, ["users", "create", "--username", "bob",
                                      "--password-stdin"], input="", env=cli_env)
    assert empty.exit_code == 1 and "standard input gave no password" in empty.output
    long = CliRunner().invoke(main, ["users", "create", "--username", "bob",
                                     "--password-stdin"], input="p" * 1025 + "\n", env=cli_env)
    assert long.exit_code == 1 and "longer than 1024 characters" in long.output


def test_users_create_asks_at_the_terminal(cli_env, monkeypatch):
    monkeypatch.setattr("idp.cli.users._stdin_is_terminal", lambda: True)
    result = CliRunner().invoke(main, ["users", "create", "--username", "carol"],
                                input="first try here\nsecond try\nlong password here\n"
                                      "long password here\n", env=cli_env)
    assert result.exit_code == 0, result.output
    assert result.output.count("Password: ") == 2
    assert "Error: The two entered values do not match." in result.output
    assert "try" not in result.output and "long password here" not in result.output
    assert _password_works(cli_env, "carol", "long password here")


def test_users_create_without_a_terminal_needs_password_stdin(cli_env):
    result = CliRunner().invoke(main, ["users", "create", "--username", "dave"],
                                input="long password here\n", env=cli_env)
    assert result.exit_code == 2
    assert "no terminal to ask for the password: pipe it in with --password-stdin" in (
        result.output)


def test_users_create_refuses_a_password_on_the_command_line(cli_env):
    result = CliRunner().invoke(main, ["users", "create", "--username", "erin",
                                       "--password", "long password here"], env=cli_env)
    assert result.exit_code == 2
    assert "--password is not accepted" in result.output and "--password-stdin" in result.output
    # Nothing was created: the name is still free.
    ok = CliRunner().invoke(main, ["users", "create", "--username", "erin",
                                   "--password-stdin"], input="long password here\n", env=cli_env)
    assert ok.exit_code == 0, ok.output


def _read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, bytes(seen)
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, bytes(seen)
            seen.extend(chunk)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_users_create_prompt_on_a_real_terminal_does_not_echo(cli_env):
    main_fd, child_fd = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    proc = subprocess.Popen([sys.executable, "-m", "idp.cli", "users", "create",
                             "--username", "frank"], stdin=child_fd, stdout=child_fd,
                            stderr=child_fd, env={**env, **cli_env}, start_new_session=True)
    os.close(child_fd)
    seen = bytearray()
    try:
        _read_until(main_fd, b"Password: ", seen)
        os.write(main_fd, b"typed secretly\n")
        _read_until(main_fd, b"Repeat for confirmation: ", seen)
        os.write(main_fd, b"typed secretly\n")
        _read_until(main_fd, b"created account frank", seen)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main_fd)
    assert b"typed secretly" not in seen
    assert _password_works(cli_env, "frank", "typed secretly")


@pytest.mark.parametrize("args", [["--help"], [], ["users", "--help"],
                                  ["users", "create", "--help"], ["sandbox", "--help"],
                                  ["no-such-command"]])
def test_help_creates_nothing(tmp_path, args):
    """Regression: listing the commands loaded the app, which created the
    instance folder, its secrets and database (and took a second)."""
    instance = tmp_path / "missing"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env["IDP_INSTANCE_PATH"] = str(instance)
    result = subprocess.run([sys.executable, "-m", "idp.cli", *args], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "Usage: " in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not instance.exists() and list(tmp_path.iterdir()) == []
    if args == ["no-such-command"]:
        assert result.returncode == 2 and "No such command 'no-such-command'" in result.stderr
    elif args:
        assert result.returncode == 0


def test_help_answers_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path / "missing"))
    CliRunner().invoke(main, ["users", "--help"])  # click's own first-use work
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["--help"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0 and "users" in result.output and "serve" in result.output
    assert elapsed < 0.25, f"idp --help took {elapsed:.2f} s"
    assert not (tmp_path / "missing").exists()


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

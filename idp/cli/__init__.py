"""The ``idp`` command: server, schema, users, clients, keys, demo."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from idp.config import ConfigError


def _create_app() -> Flask:
    from sqlalchemy.exc import OperationalError

    from idp import create_app
    from idp.extensions import db

    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    except OperationalError as exc:
        raise click.ClickException(f"the database cannot be reached: {exc.orig}") from None

    # A command is one short unit of work: close pooled connections when its
    # app context ends instead of leaving them to the garbage collector.
    @app.teardown_appcontext
    def _close_pool(_exc: BaseException | None) -> None:
        db.session.remove()
        db.engine.dispose()

    return app


class IdpGroup(FlaskGroup):
    """Flask's command group without its generic options (``--app``,
    ``--env-file``, ``--debug``) and plugin commands: the ``idp`` command
    serves one application, and schema revisions are made by developers,
    not operators (so Flask-Migrate's ``db`` group is replaced by ours).

    Its commands are all registered here, none on ``app.cli``, so listing
    them (``idp --help``) and looking one up never create the application:
    creating it makes the instance folder, secrets and database and takes a
    second, which help and a mistyped command name must not do. The app is
    created only when a command that needs it runs (``with_appcontext``).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in ("env_file", "app", "debug")]

    def _load_plugin_commands(self) -> None:
        return None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The registered command ``name``, or None; the app is not loaded."""
        return click.Group.get_command(self, ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The registered commands' names, sorted; the app is not loaded."""
        return click.Group.list_commands(self, ctx)


@click.group(cls=IdpGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """Provincial identity provider (OpenID Connect Provider).

    Settings come from config/default.toml and IDP_* environment variables;
    the instance folder is ./instance unless IDP_INSTANCE_PATH says otherwise.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=int, help="TCP port.")
@click.option("--workers", type=int, default=None, help="Worker processes (default: config).")
@click.option("--threads", type=int, default=None, help="Threads per worker (default: config).")
def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Run the provider under gunicorn (threaded workers that read each request first)."""
    from idp.cli.serve import run_gunicorn
    from idp.config import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    _create_app()  # fail here, before forking, on bad config; also upgrades the schema
    run_gunicorn("idp:create_app()", host, port, workers or settings["server"]["workers"],
                 threads or settings["server"]["threads"],
                 request_timeout=settings["server"]["request_timeout"])


@main.command()
@click.option("--port", default=5000, show_default=True, type=int,
              help="Provider port; the portals use the next two ports.")
def demo(port: int) -> None:
    """Start the provider and two department portals with a demo account (SSO demo)."""
    from idp.cli.demo import run_demo

    run_demo(port)


@main.group("db")
def database() -> None:
    """Manage the database schema."""


@database.command("upgrade")
@with_appcontext
def database_upgrade() -> None:
    """Upgrade the schema to the newest revision (the server also does it at start)."""
    from flask import current_app

    from idp.db import current_revision, upgrade_database

    upgrade_database()
    click.echo(f"database schema at revision {current_revision()} "
               f"({current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]})")


@database.command("purge")
@with_appcontext
def database_purge() -> None:
    """Delete expired refresh tokens and grants nothing can use any more (run daily)."""
    from idp.oidc.grants import purge_expired
    from idp.runtime import current_runtime

    counts = purge_expired(current_runtime())
    click.echo(f"deleted {counts['refresh_tokens']} expired refresh tokens and "
               f"{counts['grants']} spent grants")


@main.group()
def users() -> None:
    """Manage accounts."""


#: Longest password line read from standard input (the account policy
#: allows 1024 characters; a longer line is refused, not cut).
MAX_PASSWORD_LINE = 1024


def _stdin_is_terminal() -> bool:
    """Whether standard input is a terminal (someone can be asked)."""
    return sys.stdin.isatty()


def _refuse_password_option(_ctx: click.Context, _param: click.Parameter,
                            value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "--password is not accepted: a password on the command line is seen by every "
            "user of the machine (ps, /proc) and kept in shell history. Type it at the "
            "prompt, or pipe it in with --password-stdin.")


def _read_password(from_stdin: bool) -> str:
    """The new account's password: one line of standard input with
    ``--password-stdin`` (like ``docker login``), else asked twice at the
    terminal without echo.

    :raises click.UsageError: no ``--password-stdin`` and no terminal to ask at.
    :raises click.ClickException: an empty or too long line on standard input.
    """
    if from_stdin:
        line = sys.stdin.readline(MAX_PASSWORD_LINE + 2)
        password = line.removesuffix("\n").removesuffix("\r")
        if len(password) > MAX_PASSWORD_LINE:
            raise click.ClickException(
                f"--password-stdin: the password is longer than {MAX_PASSWORD_LINE} characters")
        if not password:
            raise click.ClickException("--password-stdin: standard input gave no password "
                                       "(one line, ended by a newline or the end of input)")
        return password
    if not _stdin_is_terminal():
        raise click.UsageError("no terminal to ask for the password: pipe it in with "
                               "--password-stdin")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("create")
@click.option("--username", required=True)
@click.option("--password-stdin", "password_stdin", is_flag=True,
              help="Read the password from the first line of standard input instead of "
                   "asking for it at the terminal.")
@click.option("--password", hidden=True, expose_value=False, is_eager=True,
              callback=_refuse_password_option)
@click.option("--name", default=None, help="Display name.")
@click.option("--email", default=None)
@click.option("--admin", is_flag=True,
              help="An operator: must set up an authenticator (TOTP) at first sign-in.")
@with_appcontext
def users_create(username: str, password_stdin: bool, name: str | None, email: str | None,
                 admin: bool) -> None:
    """Create an account. The password is asked at the terminal (twice,
    not shown), or read from standard input with --password-stdin; never
    given on the command line."""
    from idp.accounts.service import AccountError, create_account
    from idp.runtime import current_runtime

    password = _read_password(password_stdin)
    try:
        account = create_account(current_runtime(), username, password, name=name, email=email,
                                 admin=admin)
    except AccountError as exc:
        raise click.ClickException("\n".join(f"{field}: {message}"
                                             for field, message in exc.errors)) from None
    role = " (administrator: TOTP required)" if admin else ""
    click.echo(f"created account {account.username} (sub {account.subject}){role}")


def _account(identifier: str):
    """The account named by a username, resident ID, card or verified phone number."""
    from idp.accounts.service import find_for_login
    from idp.runtime import current_runtime

    account = find_for_login(current_runtime(), identifier)
    if account is None:
        raise click.ClickException(f"no account is named {identifier!r}")
    return account


_ACCOUNT_ARG = click.argument("identifier", metavar="ACCOUNT")
_REASON = click.option("--reason", required=True, help="Why (kept in the audit trail).")
_OPERATOR = click.option("--operator", default=getpass.getuser, show_default="login name",
                         help="Who acts (kept in the audit trail).")


@users.command("show")
@_ACCOUNT_ARG
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_show(identifier: str, as_json: bool) -> None:
    """Show an account: status, review flag, assurance level, masked
    identifiers, entities (ended ones too), evidence."""
    from idp.accounts import service as accounts
    from idp.accounts.entities import representations
    from idp.accounts.identifiers import mask_card_number, mask_phone, mask_resident_id
    from idp.accounts.verification import summary
    from idp.runtime import current_runtime

    rt = current_runtime()
    account = _account(identifier)
    state = summary(rt, account)
    phone, number, card = (accounts.phone_number(rt, account),
                           accounts.resident_id(rt, account), accounts.card_number(rt, account))
    info = {
        "username": account.username, "public_sub": account.subject, "status": account.status,
        "admin": account.is_admin, "reverification_required": account.reverification_required,
        "review": account.review_reason,
        "review_flagged_at": (account.review_flagged_at.isoformat()
                              if account.review_flagged_at else None),
        "level": state.level, "assurance_level": state.acr,
        "phone": mask_phone(phone) if phone else None,
        "phone_verified": account.phone_number_verified,
        "resident_id": mask_resident_id(number) if number else None,
        "card_number": mask_card_number(card) if card else None,
        "entities": [{"uscc": r.entity.uscc, "name": r.entity.name, "role": r.agent.role,
                      "level": r.level, "active": r.active,
                      "ended_at": r.agent.ended_at.isoformat() if r.agent.ended_at else None,
                      "ended_reason": r.agent.ended_reason}
                     for r in representations(account)],
        "evidence": [{"method": e.method, "result": e.result, "level": e.level,
                      "reference": e.reference, "verified_at": e.verified_at.isoformat(),
                      "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                      "counts": e.id in state.live, "revoked_reason": e.revoked_reason}
                     for e in state.evidence],
    }
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    for key, value in info.items():
        if key not in ("evidence", "entities"):
            click.echo(f"{key}: {'-' if value is None else value}")
    for r in info["entities"]:
        ended = f", ended {r['ended_at']}: {r['ended_reason']}" if r["ended_at"] else ""
        click.echo(f"entity: {r['uscc']} {r['name']} ({r['role']}, level {r['level']}{ended})")
    for e in info["evidence"]:
        click.echo(f"evidence: {e['verified_at']} {e['method']} {e['result']} "
                   f"{'counts' if e['counts'] else 'does not count'} {e['reference']}")


@users.command("suspend")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_suspend(identifier: str, reason: str, operator: str) -> None:
    """Suspend an account: no sign-in, its tokens stop working at once."""
    from idp.admin.service import suspend
    from idp.runtime import current_runtime

    account = _account(identifier)
    revoked = suspend(current_runtime(), account, operator, reason)
    click.echo(f"suspended {account.username}; {revoked} grants revoked")


@users.command("reinstate")
@_ACCOUNT_ARG
@_OPERATOR
@with_appcontext
def users_reinstate(identifier: str, operator: str) -> None:
    """Lift a suspension."""
    from idp.admin.service import reinstate
    from idp.runtime import current_runtime

    account = _account(identifier)
    reinstate(current_runtime(), account, operator)
    click.echo(f"reinstated {account.username}")


@users.command("reverify")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_reverify(identifier: str, reason: str, operator: str) -> None:
    """Demand a new identity verification: no tokens until the population
    registry matches again (the user can still sign in to verify)."""
    from idp.admin.service import require_reverification
    from idp.runtime import current_runtime

    account = _account(identifier)
    revoked = require_reverification(current_runtime(), account, operator, reason)
    click.echo(f"{account.username} must verify again; {revoked} grants revoked")


@users.command("verify-in-person")
@_ACCOUNT_ARG
@click.option("--name", required=True, help="Name as on the ID card seen at the counter.")
@click.option("--id-number", required=True, help="Resident ID number on the card.")
@click.option("--reference", required=True, help="The counter's ticket or case number.")
@click.option("--take-over", is_flag=True,
              help="If another account holds this ID number (someone verified as this "
                   "person online), take it off that account first.")
@_OPERATOR
@with_appcontext
def users_verify_in_person(identifier: str, name: str, id_number: str, reference: str,
                           take_over: bool, operator: str) -> None:
    """Record an in-person verification at a counter (level 4); the
    population registry is checked too. The person seen at the counter wins
    over an online verification of the same number with --take-over."""
    from idp.accounts.identifiers import IdentifierError
    from idp.accounts.service import AccountError
    from idp.accounts.verification import (
        VerificationFailedError,
        VerificationUnavailableError,
        verify_in_person,
    )
    from idp.admin.service import take_over_in_person
    from idp.runtime import current_runtime

    account = _account(identifier)
    rt = current_runtime()
    if rt.gateway is None:
        raise click.ClickException("no gateway is configured (gateway.url): the population "
                                   "registry cannot be asked; set IDP_GATEWAY__URL, "
                                   "IDP_GATEWAY__ACCESS_KEY and IDP_GATEWAY__SECRET")
    try:
        check = take_over_in_person if take_over else verify_in_person
        check(rt, account, name, id_number, reference, operator)
    except IdentifierError as exc:
        raise click.ClickException(f"--id-number: {exc.message}") from None
    except AccountError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}") from None
    except VerificationUnavailableError:
        raise click.ClickException("the verification service is unavailable; try again "
                                   "later") from None
    except VerificationFailedError as exc:
        raise click.ClickException(f"not verified ({exc.code}): {exc.message}") from None
    click.echo(f"{account.username} verified in person (level 4)")


@users.command("reset-second-factor")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_reset_second_factor(identifier: str, reason: str, operator: str) -> None:
    """Remove an account's authenticator app and recovery codes, for a person
    checked in person at a service counter who lost both, or whose account
    has an authenticator that is not theirs (docs/recovery.md). Every
    session ends, every grant is revoked and the verified phone is told; an
    operator sets up a new authenticator at the next sign-in."""
    from idp.admin.service import NoSecondFactorError, reset_second_factor
    from idp.runtime import current_runtime

    if not reason.strip():
        raise click.ClickException("--reason must say why (it is kept in the audit trail)")
    account = _account(identifier)
    try:
        revoked = reset_second_factor(current_runtime(), account, operator, reason.strip())
    except NoSecondFactorError:
        raise click.ClickException(f"{account.username} has no authenticator app or "
                                   "recovery codes: nothing was changed") from None
    click.echo(f"removed the authenticator app and recovery codes of {account.username}; "
               f"every session ended; {revoked} grants revoked")


@users.command("list")
@click.option("--review", is_flag=True, required=True,
              help="Accounts flagged for an operator's review (e.g. identity_released: an "
                   "ID number they had verified by name and number only was proven by "
                   "someone else's card, face, carrier or counter visit).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_list(review: bool, limit: int, as_json: bool) -> None:
    """List accounts flagged for review, oldest flag first."""
    from idp.admin.service import flagged_for_review

    rows = [{"username": a.username, "public_sub": a.subject, "status": a.status,
             "review": a.review_reason, "review_flagged_at": a.review_flagged_at.isoformat()}
            for a in flagged_for_review(limit)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['username']}\t{row['review']}\t{row['review_flagged_at']}")
    if not rows:
        click.echo("no account is flagged for review", err=True)


@users.command("clear-review")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_clear_review(identifier: str, reason: str, operator: str) -> None:
    """Clear an account's review flag after looking at it (audited)."""
    from idp.admin.service import NotFlaggedError, clear_review
    from idp.runtime import current_runtime

    account = _account(identifier)
    try:
        flagged = clear_review(current_runtime(), account, operator, reason)
    except NotFlaggedError:
        raise click.ClickException(f"{account.username} is not flagged for review") from None
    click.echo(f"cleared the review flag of {account.username} ({flagged})")


@main.group()
def clients() -> None:
    """Manage relying parties (OAuth 2.0 clients)."""


def _client_summary(client) -> dict:
    """What the commands print of a registered client (never its secret hash)."""
    return {"client_id": client.client_id, "name": client.name,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "redirect_uris": client.redirect_uris,
            "post_logout_redirect_uris": client.post_logout_redirect_uris,
            "grant_types": client.grant_types, "scope": client.scope,
            "id_token_signed_response_alg": client.id_token_signed_response_alg,
            "trusted": client.trusted, "subject_type": client.subject_type,
            "sector_identifier": client.sector_identifier, "min_acr": client.min_acr,
            "kiosk": client.kiosk, "strict_auth_method": client.strict_auth_method,
            "resource_server": client.resource_server,
            "allowed_origins": list(client.allowed_origins or [])}


@clients.command("create")
@click.option("--name", required=True, help="Name shown to users.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI.")
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True)
@click.option("--public", is_flag=True, help="Public client: no secret, PKCE required.")
@click.option("--trusted", is_flag=True, help="First-party client: no consent screen.")
@click.option("--grant-type", "grant_types", multiple=True,
              help="authorization_code, refresh_token, client_credentials "
                   "(default: authorization_code and refresh_token).")
@click.option("--auth-method", default=None,
              help="client_secret_basic (default), client_secret_post, private_key_jwt.")
@click.option("--strict-auth-method", is_flag=True,
              help="Accept only --auth-method itself (by default a client with a secret may "
                   "send it by client_secret_basic or client_secret_post).")
@click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False),
              help="JWK Set file with the client's public keys (private_key_jwt).")
@click.option("--alg", default=None,
              help="ID token algorithm (default: tokens.default_signing_alg, RS256); ES256 "
                   "is recommended.")
@click.option("--scope", default=None, help="Allowed scopes, space separated.")
@click.option("--client-id", default=None, help="Choose the client_id (default: random).")
@click.option("--subject-type", type=click.Choice(["pairwise", "public"]), default="pairwise",
              show_default=True, help="pairwise: a sub of its own per sector (OIDC Core §8).")
@click.option("--sector-identifier-uri", default=None,
              help="https URL of a JSON array of the redirect URIs; its host is the sector.")
@click.option("--min-acr", default=None,
              help="Lowest assurance level (acr) the client accepts, e.g. L2.")
@click.option("--kiosk", is_flag=True,
              help="A self-service kiosk that logs people in by card (needs private_key_jwt).")
@click.option("--allowed-origin", "allowed_origins", multiple=True,
              help="Origin (https://host[:port]) of a browser app that may call the token, "
                   "userinfo, revocation and introspection endpoints (CORS); repeatable.")
@click.option("--resource-server", is_flag=True,
              help="May introspect access tokens issued to other clients (an API).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def clients_create(name, redirect_uris, logout_uris, public, trusted, grant_types, auth_method,
                   strict_auth_method, jwks_file, alg, scope, client_id, subject_type,
                   sector_identifier_uri, min_acr, kiosk, allowed_origins, resource_server,
                   as_json) -> None:
    """Register a client. The secret is printed once; only its hash is stored."""
    from idp.clients.service import ClientError, create_client
    from idp.runtime import current_runtime

    rt = current_runtime()
    jwks = None
    if jwks_file:
        try:
            jwks = json.loads(Path(jwks_file).read_text())
        except ValueError as exc:
            raise click.ClickException(f"--jwks: not a JSON file: {exc}") from None
    try:
        client, secret = create_client(
            name, list(redirect_uris), rt.token_hmac_key,
            post_logout_redirect_uris=list(logout_uris), public=public, trusted=trusted,
            grant_types=list(grant_types) or None, auth_method=auth_method, scope=scope,
            alg=alg or rt.settings["tokens"]["default_signing_alg"], jwks=jwks,
            client_id=client_id, subject_type=subject_type,
            sector_identifier_uri=sector_identifier_uri, min_acr=min_acr,
            acr_values=rt.settings["assurance"]["acr_values"], kiosk=kiosk,
            strict_auth_method=strict_auth_method, resource_server=resource_server,
            allowed_origins=list(allowed_origins),
        )
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    rt.keys.ensure((client.id_token_signed_response_alg,))
    result = _client_summary(client)
    if secret:
        result["client_secret"] = secret
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")
        if secret:
            click.echo("Store the secret now: it cannot be shown again.", err=True)


@clients.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_list(as_json: bool) -> None:
    """List registered clients."""
    from idp.clients.service import list_clients

    rows = [_client_summary(c) for c in list_clients()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['client_id']}\t{row['name']}\t{row['token_endpoint_auth_method']}\t"
                   f"{' '.join(row['redirect_uris'])}")


@main.group()
def keys() -> None:
    """Manage signing keys."""


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True, help="Algorithm(s) to rotate (default: all).")
@with_appcontext
def keys_rotate(algs: tuple[str, ...]) -> None:
    """Introduce new signing keys; old ones stay published until their tokens expire."""
    from idp.oidc.keys import UnsupportedAlgorithmError
    from idp.runtime import current_runtime

    try:
        new = current_runtime().keys.rotate(algs or None)
    except UnsupportedAlgorithmError as exc:
        raise click.ClickException(f"unsupported algorithm: {exc}") from None
    for row in new:
        click.echo(f"new {row.alg} key {row.kid}")


from idp.cli.sandbox import sandbox as _sandbox  # noqa: E402

main.add_command(_sandbox)

"""``idp clients``: relying parties (OAuth 2.0 clients).

Each command is one unit of work (:mod:`idp.cli.unit`), committed here
before its result is printed; a change applies in every
process of the running provider at its next request (the client cache
follows the store, :mod:`idp.clients.cache`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

#: Fields ``clients update --clear`` can empty (RFC 7591 names, as ``show --json`` prints).
CLEARABLE = ("redirect_uris", "post_logout_redirect_uris", "allowed_origins", "min_acr",
             "sector_identifier_uri", "jwks", "department", "backchannel_logout_uri",
             "frontchannel_logout_uri", "cas_proxy_callbacks")


@click.group()
def clients() -> None:
    """Manage relying parties (OAuth 2.0 clients)."""


def _flag(name: str, help_text: str, update: bool):
    """A yes/no option: a flag at registration; ``--x/--no-x`` for a change,
    where leaving it out keeps what is registered."""
    if update:
        return click.option(f"{name}/--no-{name[2:]}", default=None, help=help_text)
    return click.option(name, is_flag=True, help=help_text)


def _registration_options(update: bool):
    """The options of ``clients create``, or the same for ``clients update``
    (none has a default there: what is not given stays as registered)."""
    replaces = " Replaces the registered ones." if update else ""
    options = [
        click.option("--name", required=not update, help="Name shown to users."),
        click.option("--redirect-uri", "redirect_uris", multiple=True,
                     help="Exact redirect URI; repeatable." + replaces),
        click.option("--post-logout-redirect-uri", "logout_uris", multiple=True,
                     help="Where logout may return; repeatable." + replaces),
        click.option("--public", is_flag=True, help="Public client: no secret, PKCE required."),
        _flag("--trusted", "First-party client: no consent screen.", update),
        click.option("--grant-type", "grant_types", multiple=True,
                     help="authorization_code, refresh_token, client_credentials "
                          "(default: authorization_code and refresh_token)." + replaces),
        click.option("--auth-method", default=None,
                     help="client_secret_basic (default), client_secret_post, "
                          "private_key_jwt."),
        _flag("--strict-auth-method",
              "Accept only --auth-method itself (by default a client with a secret may "
              "send it by client_secret_basic or client_secret_post).", update),
        click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False),
                     help="JWK Set file with the client's public keys (private_key_jwt)."),
        click.option("--alg", default=None,
                     help="ID token algorithm (default: tokens.default_signing_alg, RS256); "
                          "ES256 is recommended."),
        click.option("--scope", default=None, help="Allowed scopes, space separated."),
        click.option("--subject-type", type=click.Choice(["pairwise", "public"]),
                     default=None if update else "pairwise", show_default=not update,
                     help="pairwise: a sub of its own per sector (OIDC Core §8)."),
        click.option("--sector-identifier-uri", default=None,
                     help="https URL of a JSON array of the redirect URIs; its host is the "
                          "sector."),
        click.option("--min-acr", default=None,
                     help="Lowest assurance level (acr) the client accepts, e.g. L2."),
        _flag("--kiosk", "A self-service kiosk that logs people in by card (needs "
                         "private_key_jwt).", update),
        click.option("--allowed-origin", "allowed_origins", multiple=True,
                     help="Origin (https://host[:port]) of a browser app that may call the "
                          "token, userinfo, revocation and introspection endpoints (CORS); "
                          "repeatable." + replaces),
        _flag("--resource-server",
              "May introspect access tokens issued to other clients (an API).", update),
        click.option("--department", default=None,
                     help="Code of the department whose legacy users the client serves: "
                          "their old login names work at its login, and it receives "
                          "legacy_ids under the scope legacy."),
        click.option("--backchannel-logout-uri", default=None,
                     help="https URL the provider POSTs a logout token to when a session "
                          "the client took part in ends (Back-Channel Logout 1.0)."),
        _flag("--backchannel-logout-session-required",
              "Logout tokens (and ID tokens) must carry the session id, sid.", update),
        click.option("--frontchannel-logout-uri", default=None,
                     help="URL the provider's logout page loads in a hidden frame "
                          "(Front-Channel Logout 1.0); on the host of a redirect URI."),
        _flag("--frontchannel-logout-session-required",
              "The front-channel logout URL gets iss and sid in its query.", update),
        click.option("--cas-service", "cas_services", multiple=True,
                     help="Make the client a CAS service logging in at this service URL "
                          "(exact, or a prefix ending in /); repeatable." + replaces),
        click.option("--cas-proxy-callback", "cas_proxy_callbacks", multiple=True,
                     help="A pgtUrl at which the CAS service may receive proxy-granting "
                          "tickets; repeatable." + replaces),
    ]
    if update:
        options.append(click.option(
            "--clear", "cleared", multiple=True, type=click.Choice(CLEARABLE),
            help="Empty a registered field; repeatable."))
    else:
        options.append(click.option("--client-id", default=None,
                                    help="Choose the client_id (default: random)."))
    options.append(click.option("--json", "as_json", is_flag=True,
                                help="Print the result as JSON."))

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _given_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~idp.clients.metadata.ClientMetadata` fields the options
    give; an option left out gives none.

    :raises click.ClickException: an unreadable --jwks file, or --public
        with another method.
    """
    from idp.clients.metadata import ClientError, auth_method_for

    given: dict[str, Any] = {}
    if options["name"] is not None:
        given["client_name"] = options["name"]
    for option, name in (("redirect_uris", "redirect_uris"),
                         ("logout_uris", "post_logout_redirect_uris"),
                         ("grant_types", "grant_types"),
                         ("allowed_origins", "allowed_origins"),
                         ("cas_services", "cas_services"),
                         ("cas_proxy_callbacks", "cas_proxy_callbacks")):
        if options[option]:
            given[name] = list(options[option])
    if options["cas_services"] and not (options["public"] or options["auth_method"]):
        # A CAS service has no secret: it validates tickets unauthenticated.
        given["token_endpoint_auth_method"] = "none"
    if options["public"] or options["auth_method"]:
        try:
            given["token_endpoint_auth_method"] = auth_method_for(options["public"],
                                                                  options["auth_method"])
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
    for option, name in (("alg", "id_token_signed_response_alg"), ("scope", "scope"),
                         ("subject_type", "subject_type"),
                         ("sector_identifier_uri", "sector_identifier_uri"),
                         ("min_acr", "min_acr"), ("trusted", "trusted"),
                         ("strict_auth_method", "strict_auth_method"), ("kiosk", "kiosk"),
                         ("resource_server", "resource_server"), ("department", "department"),
                         ("backchannel_logout_uri", "backchannel_logout_uri"),
                         ("backchannel_logout_session_required",
                          "backchannel_logout_session_required"),
                         ("frontchannel_logout_uri", "frontchannel_logout_uri"),
                         ("frontchannel_logout_session_required",
                          "frontchannel_logout_session_required")):
        if options[option] is not None:
            given[name] = options[option]
    if options["jwks_file"]:
        try:
            given["jwks"] = json.loads(Path(options["jwks_file"]).read_text())
        except ValueError as exc:
            raise click.ClickException(f"--jwks: not a JSON file: {exc}") from None
    return given


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
            "resource_server": client.resource_server, "department": client.department,
            "backchannel_logout_uri": client.backchannel_logout_uri,
            "backchannel_logout_session_required": client.backchannel_logout_session_required,
            "frontchannel_logout_uri": client.frontchannel_logout_uri,
            "frontchannel_logout_session_required":
                client.frontchannel_logout_session_required,
            "cas_services": list(client.cas_services or []),
            "cas_proxy_callbacks": list(client.cas_proxy_callbacks or []),
            "allowed_origins": list(client.allowed_origins or [])}


def _echo(result: dict, as_json: bool, secret_shown: bool) -> None:
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")
    if secret_shown and not as_json:
        click.echo("Store the secret now: it cannot be shown again.", err=True)


def _registered(client_id: str):
    """The registered client ``client_id``.

    :raises click.ClickException: there is none.
    """
    from idp.clients.service import find_client

    row = find_client(client_id)
    if row is None:
        raise click.ClickException(f"no client is registered as {client_id!r}")
    return row


def _commit_and_show(rt, client, secret: str | None, as_json: bool) -> None:
    """Commit a registration or change, make sure a signing key for the
    client's ID tokens exists, and print the client (its secret once)."""
    _commit()
    rt.keys.ensure((client.id_token_signed_response_alg,))
    result = _client_summary(client)
    if secret:
        result["client_secret"] = secret
    _echo(result, as_json, secret is not None)


def _commit() -> None:
    """Commit the command's transaction; the client cache of every process
    follows (:mod:`idp.clients.cache`)."""
    from idp import unit_of_work

    unit_of_work.commit()


@clients.command("create")
@_registration_options(update=False)
@with_appcontext
def clients_create(as_json: bool, client_id: str | None, **options: Any) -> None:
    """Register a client. The secret is printed once; only its hash is stored."""
    from idp.clients.metadata import ClientError, ClientMetadata
    from idp.clients.service import create_client
    from idp.runtime import current_runtime

    rt = current_runtime()
    given = _given_fields(options)
    given.setdefault("id_token_signed_response_alg",
                     rt.settings["tokens"]["default_signing_alg"])
    try:
        client, secret = create_client(rt, ClientMetadata(client_id=client_id, **given))
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    _commit_and_show(rt, client, secret, as_json)


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
        # A CAS service shows its service URLs where a client has its
        # redirect URIs, and says what it is instead of an auth method.
        kind = "cas" if row["cas_services"] else row["token_endpoint_auth_method"]
        urls = row["cas_services"] or row["redirect_uris"]
        click.echo(f"{row['client_id']}\t{row['name']}\t{kind}\t{' '.join(urls)}")


@clients.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print the client as JSON.")
@with_appcontext
def clients_show(client_id: str, as_json: bool) -> None:
    """Show one client: every registered setting, never its secret."""
    row = _registered(client_id)
    result = _client_summary(row)
    previous = row.previous_secret_expires_at if row.previous_secret_hash else None
    result.update({
        "sector_identifier_uri": row.sector_identifier_uri, "jwks": row.jwks,
        "has_secret": row.secret_hash is not None,
        "previous_secret_valid_until": previous.isoformat() + "Z" if previous else None,
        "created_at": row.created_at.isoformat() + "Z",
        "updated_at": row.updated_at.isoformat() + "Z"})
    _echo(result, as_json, False)


@clients.command("update")
@click.argument("client_id")
@_registration_options(update=True)
@with_appcontext
def clients_update(client_id: str, as_json: bool, cleared: tuple[str, ...],
                   **options: Any) -> None:
    """Change a client: only what the options give, checked as at
    registration. It applies in every process of the running provider at
    its next request. A client moved to a method with a secret gets one,
    printed once; moved off private_key_jwt, it loses its keys; made
    public, it loses its grants (refresh and access tokens), not its
    consents."""
    from dataclasses import replace

    from idp.admin.clients import change_client
    from idp.clients.metadata import ClientError
    from idp.clients.service import registered_metadata
    from idp.runtime import current_runtime

    rt = current_runtime()
    given = _given_fields(options)
    both = sorted(set(cleared) & set(given))
    if both:
        raise click.UsageError(f"--clear {both[0]} and a new value for it: give one")
    scalars = ("min_acr", "sector_identifier_uri", "jwks", "department",
               "backchannel_logout_uri", "frontchannel_logout_uri")
    given.update({name: None if name in scalars else () for name in cleared})
    for uri in ("backchannel_logout_uri", "frontchannel_logout_uri"):
        flag = uri.replace("_uri", "_session_required")
        if uri in cleared and flag not in given:
            given[flag] = False
    if given.get("token_endpoint_auth_method", "private_key_jwt") != "private_key_jwt":
        given.setdefault("jwks", None)
    current = registered_metadata(_registered(client_id))
    try:
        changed = change_client(rt, client_id, replace(current, **given), "cli")
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    _commit_and_show(rt, changed.client, changed.secret, as_json)
    if changed.made_public:
        click.echo(f"made public: {changed.grants} grants revoked (refresh tokens of a "
                   "confidential client are bound to its authentication); consents kept",
                   err=True)


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option("--grace", type=click.IntRange(0, 30 * 24 * 3600), required=True,
              help="Seconds the old secret is still accepted, so the relying party can "
                   "switch without an outage (0: it stops at once; at most 30 days). "
                   "A second rotation ends the first one's grace.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def clients_rotate_secret(client_id: str, grace: int, as_json: bool) -> None:
    """Give a client a new secret, printed once; the old one stays valid
    for --grace seconds."""
    from idp.clients.metadata import ClientError
    from idp.clients.service import rotate_secret
    from idp.runtime import current_runtime

    try:
        secret, until = rotate_secret(current_runtime(), client_id, grace)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    _commit()
    _echo({"client_id": client_id, "client_secret": secret,
           "previous_secret_valid_until": until.isoformat() + "Z" if until else None},
          as_json, True)


@clients.command("delete")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def clients_delete(client_id: str, yes: bool) -> None:
    """Delete a client: its grants are revoked (refresh and access tokens
    stop working) and its consents deleted, in every process at once."""
    from idp.admin.clients import remove_client
    from idp.runtime import current_runtime

    row = _registered(client_id)
    if not yes:
        click.confirm(f"Delete client {client_id} ({row.name})? Its grants are revoked and "
                      "its consents deleted", abort=True)
    removed = remove_client(current_runtime(), client_id, "cli")
    _commit()
    click.echo(f"deleted client {client_id}; {removed.grants} grants revoked, "
               f"{removed.consents} consents deleted")

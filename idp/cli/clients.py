"""``idp clients``: relying parties (OAuth 2.0 clients)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext


@click.group()
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

"""Registering, changing and removing clients, and rotating their secrets.

Each function checks its rules (:mod:`idp.clients.metadata`), changes the
rows, audits and flushes; the caller commits. Every change is handed to the
client cache (:meth:`ClientCache.changed`), so that it applies in every
process at the next request once committed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from idp.audit.service import record
from idp.clients.cache import SECRET_PURPOSE
from idp.clients.metadata import ClientError, ClientMetadata, checked, sector_of
from idp.clients.models import Client
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token
from idp.timeutil import utcnow

#: Longest grace period of a rotated secret, seconds (30 days): a longer
#: overlap would defeat the rotation.
MAX_SECRET_GRACE = 30 * 24 * 3600

Fetch = Callable[[str], list[str]]


def find_client(client_id: str) -> Client | None:
    """The registered client ``client_id``, or None."""
    return db.session.scalar(select(Client).where(Client.client_id == client_id))


def list_clients() -> list[Client]:
    """All registered clients, oldest first."""
    return list(db.session.scalars(select(Client).order_by(Client.id)))


def registered_metadata(row: Client) -> ClientMetadata:
    """What is registered for ``row``, as the value :func:`update_client` takes."""
    return ClientMetadata(
        client_name=row.name, redirect_uris=row.redirect_uris or (),
        post_logout_redirect_uris=row.post_logout_redirect_uris or (),
        grant_types=row.grant_types or (),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        scope=row.scope, id_token_signed_response_alg=row.id_token_signed_response_alg,
        jwks=row.jwks, subject_type=row.subject_type,
        sector_identifier_uri=row.sector_identifier_uri, client_id=row.client_id,
        trusted=row.trusted, min_acr=row.min_acr, kiosk=row.kiosk,
        strict_auth_method=row.strict_auth_method, allowed_origins=row.allowed_origins or (),
        resource_server=row.resource_server, department=row.department,
        backchannel_logout_uri=row.backchannel_logout_uri,
        backchannel_logout_session_required=row.backchannel_logout_session_required,
        frontchannel_logout_uri=row.frontchannel_logout_uri,
        frontchannel_logout_session_required=row.frontchannel_logout_session_required,
        cas_services=row.cas_services or (), cas_proxy_callbacks=row.cas_proxy_callbacks or ())


def _new_secret(rt: Runtime) -> tuple[str, str]:
    """A new client secret (256 bits) and its keyed hash, the only form stored."""
    secret = random_token(32)
    return secret, keyed_hash(rt.token_hmac_key, secret, SECRET_PURPOSE)


def _new_client_id() -> str:
    """A random client_id (128 bits, base64url) that does not begin with
    ``-``, which a command line would take for an option (``idp clients show ID``)."""
    while (client_id := random_token(16)).startswith("-"):
        pass
    return client_id


def _acr_values(rt: Runtime) -> tuple[str, ...]:
    return tuple(rt.settings["assurance"]["acr_values"])


def create_client(rt: Runtime, metadata: ClientMetadata, *, actor: str = "cli",
                  fetch: Fetch | None = None) -> tuple[Client, str | None]:
    """Register a client (:func:`idp.clients.metadata.validate`) and flush.

    The caller makes sure a signing key for its
    ``id_token_signed_response_alg`` exists (``KeyRing.ensure``).

    :param metadata: the registration; ``client_id`` None for a random one.
    :param actor: who registers, for the audit trail.
    :param fetch: reads a ``sector_identifier_uri`` document (tests).
    :returns: ``(client, secret)``; ``secret`` is the clear client secret (256
        bits), shown once and stored only as an HMAC, or None when the client
        authenticates without one.
    :raises ClientError: on any invalid value, or a ``client_id`` taken.
    """
    valid = checked(metadata, _acr_values(rt))
    sector = sector_of(valid, fetch)
    client_id = valid.client_id or _new_client_id()
    _check_cas_overlap(valid, client_id)
    if find_client(client_id) is not None:
        raise ClientError(f"client_id {client_id!r} already exists")
    secret, secret_hash = _new_secret(rt) if valid.has_secret else (None, None)
    row = Client(client_id=client_id, secret_hash=secret_hash)
    _apply(row, valid, sector)
    db.session.add(row)
    record("client.created", client_id=client_id, actor=actor, name=row.name,
           redirect_uris=row.redirect_uris, grant_types=row.grant_types,
           auth_method=row.token_endpoint_auth_method,
           strict_auth_method=row.strict_auth_method, resource_server=row.resource_server,
           allowed_origins=row.allowed_origins)
    db.session.flush()
    rt.clients.changed(db.session, client_id)
    return row, secret


def update_client(rt: Runtime, client_id: str, metadata: ClientMetadata, *,
                  actor: str = "cli", fetch: Fetch | None = None) -> tuple[Client, str | None]:
    """Replace what is registered for ``client_id`` with ``metadata``,
    checked as at registration, and flush; once committed it applies in
    every process at the next request.

    What the client's users know stays: the ``client_id``, the subject type
    and the pairwise sector (their ``sub``, OIDC Core §8.1). The sector is
    worked out again only when the redirect URIs or the
    ``sector_identifier_uri`` change, and must come out the same. A client
    moving to a method without a secret loses its secrets; one moving to a
    method with a secret gets a new one. Its grants are authorizations: a
    confidential client made public loses them through the operator action
    that changes a client (:func:`idp.admin.clients.change_client`).

    :param metadata: the whole new registration (start from
        :func:`registered_metadata` to change some fields only).
    :returns: ``(client, secret)``; ``secret`` is a new clear secret, or None.
    :raises ClientError: an unknown client, an invalid value, or a change of
        ``client_id``, subject type or sector.
    """
    row = find_client(client_id)
    if row is None:
        raise ClientError(f"no client is registered as {client_id!r}")
    if metadata.client_id not in (None, client_id):
        raise ClientError("client_id cannot change: register a new client")
    valid = checked(metadata, _acr_values(rt))
    _check_cas_overlap(valid, client_id)
    if valid.subject_type != row.subject_type:
        raise ClientError(f"subject type cannot change from {row.subject_type} to "
                          f"{valid.subject_type}: the sub its users know would change; "
                          "register a new client")
    sector = row.sector_identifier
    if (valid.subject_type == "pairwise"
            and (list(valid.redirect_uris) != list(row.redirect_uris or [])
                 or valid.sector_identifier_uri != row.sector_identifier_uri)):
        sector = sector_of(valid, fetch)
        if sector != row.sector_identifier:
            raise ClientError(
                f"this would move the client from {_sector_name(row.sector_identifier)} to "
                f"{_sector_name(sector)}: the sub its users know would change (OIDC Core "
                f"§8.1); keep a redirect URI host, list the new URIs in a "
                f"sector_identifier_uri on the sector's host, or register a new client")
    before = registered_metadata(row)
    secret = None
    if not valid.has_secret:
        row.secret_hash = row.previous_secret_hash = row.previous_secret_expires_at = None
    elif row.secret_hash is None:
        secret, row.secret_hash = _new_secret(rt)
    _apply(row, valid, sector)
    changed = sorted(name for name in ClientMetadata.__dataclass_fields__
                     if name != "client_id"
                     and getattr(registered_metadata(row), name) != getattr(before, name))
    record("client.updated", client_id=client_id, actor=actor, changed=changed,
           new_secret=secret is not None)
    db.session.flush()
    rt.clients.changed(db.session, client_id)
    return row, secret


def rotate_secret(rt: Runtime, client_id: str, grace: int, *,
                  actor: str = "cli") -> tuple[str, datetime | None]:
    """Give a client a new secret and flush. The old one is still accepted
    for ``grace`` seconds (none at all for 0), so the relying party can
    change its configuration without an outage; a secret rotated before
    that is no longer accepted at all (one rotation's grace at a time).

    :param grace: seconds, 0 to :data:`MAX_SECRET_GRACE`.
    :returns: ``(secret, until)``: the new clear secret, shown once, and
        when the old one stops being accepted (UTC), or None with no grace.
    :raises ClientError: an unknown client, one without a secret, or a
        grace out of range.
    """
    if not 0 <= grace <= MAX_SECRET_GRACE:
        raise ClientError(f"the grace period must be 0 to {MAX_SECRET_GRACE} seconds "
                          "(30 days)")
    row = find_client(client_id)
    if row is None:
        raise ClientError(f"no client is registered as {client_id!r}")
    if row.secret_hash is None:
        raise ClientError(f"client {client_id!r} authenticates with "
                          f"{row.token_endpoint_auth_method}: it has no secret to rotate")
    until = utcnow() + timedelta(seconds=grace) if grace else None
    row.previous_secret_hash = row.secret_hash if until else None
    row.previous_secret_expires_at = until
    secret, row.secret_hash = _new_secret(rt)
    record("client.secret_rotated", client_id=client_id, actor=actor, grace=grace)
    db.session.flush()
    rt.clients.changed(db.session, client_id)
    return secret, until


def delete_client(rt: Runtime, client_id: str, *, actor: str = "cli") -> None:
    """Remove a client's registration and flush: it can no longer
    authenticate or be named in a request. Its grants and consents are
    authorizations (:func:`idp.authorizations.service.revoke_client_grants`), ended by the
    operator action that removes a client (:func:`idp.admin.clients.remove_client`).

    :raises ClientError: an unknown client.
    """
    row = find_client(client_id)
    if row is None:
        raise ClientError(f"no client is registered as {client_id!r}")
    name = row.name
    db.session.delete(row)
    record("client.deleted", client_id=client_id, actor=actor, name=name)
    db.session.flush()
    rt.clients.changed(db.session, client_id)


def _check_cas_overlap(valid: ClientMetadata, client_id: str) -> None:
    """A CAS service URL belongs to one service: none of ``valid``'s may
    equal, lie under or cover another client's (a longer prefix would take
    that service's users' tickets, consent and attributes for the paths
    below it).

    :raises ClientError: naming the other client.
    """
    if not valid.cas_services:
        return
    for other_id, urls in db.session.execute(select(Client.client_id, Client.cas_services).where(
            Client.cas_services.is_not(None), Client.client_id != client_id)):
        for mine in valid.cas_services:
            for theirs in urls or ():
                if mine == theirs or (theirs.endswith("/") and mine.startswith(theirs)) \
                        or (mine.endswith("/") and theirs.startswith(mine)):
                    raise ClientError(f"CAS service URL {mine!r} overlaps {theirs!r} of client "
                                      f"{other_id!r}: a service URL belongs to one service")


def _apply(row: Client, valid: ClientMetadata, sector: str | None) -> None:
    """Set ``row``'s registered fields from validated metadata."""
    row.name = valid.client_name
    row.redirect_uris = list(valid.redirect_uris)
    row.post_logout_redirect_uris = list(valid.post_logout_redirect_uris)
    row.grant_types = list(valid.grant_types)
    row.scope = valid.scope
    row.token_endpoint_auth_method = valid.token_endpoint_auth_method
    row.trusted = valid.trusted
    row.id_token_signed_response_alg = valid.id_token_signed_response_alg
    row.jwks = valid.jwks
    row.subject_type = valid.subject_type
    row.sector_identifier = sector
    row.sector_identifier_uri = valid.sector_identifier_uri
    row.min_acr = valid.min_acr
    row.kiosk = valid.kiosk
    row.strict_auth_method = valid.strict_auth_method
    row.resource_server = valid.resource_server
    row.department = valid.department
    row.backchannel_logout_uri = valid.backchannel_logout_uri
    row.backchannel_logout_session_required = valid.backchannel_logout_session_required
    row.frontchannel_logout_uri = valid.frontchannel_logout_uri
    row.frontchannel_logout_session_required = valid.frontchannel_logout_session_required
    row.cas_services = list(valid.cas_services) or None
    row.cas_proxy_callbacks = list(valid.cas_proxy_callbacks) or None
    row.allowed_origins = list(valid.allowed_origins)


def _sector_name(sector: str | None) -> str:
    return f"sector {sector}" if sector else "a sector of its own"

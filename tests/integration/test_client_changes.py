"""Changing a registered client (issue 8): ``update_client``,
``rotate_secret`` and removing a client."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from tests.helpers import Browser, redeem

# --- the services, on the in-process provider ------------------------------------


def _metadata(provider, client_id: str):
    from idp.clients.service import find_client, registered_metadata

    return registered_metadata(find_client(client_id))


def test_removing_a_client_revokes_its_grants_and_consents(provider):
    from idp.admin.clients import remove_client
    from idp.audit.models import AuditEvent
    from idp.extensions import db
    from idp.oidc.models import Consent, Grant, RefreshToken

    username, password, _ = provider.create_account()
    doomed, kept = provider.create_client(trusted=False), provider.create_client(trusted=False)
    tokens = {}
    for client in (doomed, kept):
        params = Browser(provider.url).login_for_code(client, username=username,
                                                      password=password,
                                                      scope="openid offline_access")
        tokens[client.client_id] = redeem(provider.url, client, params["code"]).json()
    with provider.app.app_context():
        removed = remove_client(provider.runtime, doomed.client_id, "operator")
        db.session.commit()
        assert (removed.grants, removed.consents) == (1, 1)
        grants = db.session.scalars(select(Grant).where(
            Grant.client_id.in_([doomed.client_id, kept.client_id]))).all()
        assert {g.client_id: g.revoked_at is not None for g in grants} == {
            doomed.client_id: True, kept.client_id: False}
        live = db.session.scalars(select(RefreshToken.grant_id).where(
            RefreshToken.revoked_at.is_(None))).all()
        assert {g.id for g in grants if g.client_id == doomed.client_id}.isdisjoint(live)
        assert db.session.scalars(select(Consent.client_id).where(
            Consent.client_id.in_([doomed.client_id, kept.client_id]))).all() == [
            kept.client_id]
        events = {e.event: e.detail for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.client_id == doomed.client_id))}
        assert events["client.deleted"]["actor"] == "operator"
        assert events["client.grants_revoked"] == {"reason": "client_deleted", "grants": 1,
                                                   "consents": 1}
    for client_id, status in ((doomed.client_id, 401), (kept.client_id, 200)):
        response = requests.get(f"{provider.url}/userinfo", headers={
            "Authorization": f"Bearer {tokens[client_id]['access_token']}"})
        assert response.status_code == status


def test_an_update_keeps_what_the_users_know(provider):
    """client_id, subject type and pairwise sector stay (their sub would
    change); a move within the sector is allowed and fetches nothing when
    the redirect URIs stay."""
    from dataclasses import replace

    from idp.clients.metadata import ClientError
    from idp.clients.service import update_client
    from idp.extensions import db

    client = provider.create_client(subject_type="pairwise",
                                    redirect_uri="https://a.example.test/cb")

    def no_fetch(uri):
        raise AssertionError("fetched")

    with provider.app.app_context():
        rt, current = provider.runtime, _metadata(provider, client.client_id)
        for change, message in (
                ({"client_id": "other"}, "client_id cannot change"),
                ({"subject_type": "public"}, "subject type cannot change from pairwise"),
                ({"redirect_uris": ["https://b.example.test/cb"]},
                 "from sector a.example.test to sector b.example.test"),
                ({"redirect_uris": ["http://127.0.0.1/cb"]}, "to a sector of its own"),
                ({"scope": "openid nope"}, "scope 'nope' is not supported")):
            with pytest.raises(ClientError, match=message):
                update_client(rt, client.client_id, replace(current, **change), fetch=no_fetch)
        row, secret = update_client(rt, client.client_id, replace(
            current, client_name="Renamed", redirect_uris=["https://a.example.test/other"]),
            fetch=no_fetch)
        assert (row.name, row.redirect_uris, row.sector_identifier, secret) == (
            "Renamed", ["https://a.example.test/other"], "a.example.test", None)
        db.session.commit()
        with pytest.raises(ClientError, match="no client is registered as 'missing'"):
            update_client(rt, "missing", current)


def test_an_update_of_the_auth_method_gives_or_takes_the_secret(provider):
    from dataclasses import replace

    from idp.clients.service import rotate_secret, update_client
    from idp.extensions import db

    client = provider.create_client(grant_types=["client_credentials"])
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}
    with provider.app.app_context():
        rt = provider.runtime
        rotate_secret(rt, client.client_id, 600)
        row, secret = update_client(rt, client.client_id, replace(
            _metadata(provider, client.client_id), token_endpoint_auth_method="private_key_jwt",
            jwks=jwks))
        assert secret is None
        assert (row.secret_hash, row.previous_secret_hash, row.previous_secret_expires_at) == (
            None, None, None)
        row, secret = update_client(rt, client.client_id, replace(
            _metadata(provider, client.client_id), token_endpoint_auth_method="client_secret_post",
            jwks=None))
        assert secret and row.secret_hash
        db.session.commit()
    answer = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": client.client_id,
        "client_secret": secret})
    assert answer.status_code == 200, answer.text
    assert requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                         auth=client.auth).status_code == 401


def test_rotation_rules(provider):
    from idp.clients.metadata import ClientError
    from idp.clients.service import rotate_secret

    public = provider.create_client(public=True)
    with provider.app.app_context():
        with pytest.raises(ClientError, match="authenticates with none: it has no secret"):
            rotate_secret(provider.runtime, public.client_id, 0)
        with pytest.raises(ClientError, match="grace period must be 0 to"):
            rotate_secret(provider.runtime, public.client_id, -1)
        with pytest.raises(ClientError, match="no client is registered"):
            rotate_secret(provider.runtime, "missing", 0)

"""The interaction below HTTP (idp.oidc.interaction): a saved authorization
request bound to one browser, and the verbs the login and consent pages end
it with."""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import AccessDeniedError
from sqlalchemy import select

from idp.audit.models import AuditEvent
from idp.authorizations.consents import has_consent
from idp.extensions import db
from idp.oidc import interaction
from idp.oidc.authorize import UnmetAuthenticationRequirementsError


def begin(rt, client, **extra: str) -> interaction.Interaction:
    args = {"client_id": [client.client_id], "scope": ["openid profile"],
            "response_type": ["code"], **{k: [v] for k, v in extra.items()}}
    return interaction.start(rt.store, args, "browser-1", "192.0.2.1",
                             rt.settings["throttle"], rt.pii)


def events(kind: str, account_id: int) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.event == kind, AuditEvent.account_id == account_id)))


def test_bound_to_the_browser_that_started_it(rt, client):
    item = begin(rt, client, login_hint="13900000001")
    assert interaction.load(rt.store, item.id, "browser-2") is None
    assert interaction.load(rt.store, item.id, None) is None
    loaded = interaction.load(rt.store, item.id, "browser-1")
    assert loaded.arg("client_id") == client.client_id
    # The hint is kept encrypted and read back through the cipher.
    assert loaded.arg("login_hint") != "13900000001"
    assert interaction.login_hint(rt.pii, loaded) == "13900000001"


def test_login_finished_is_kept_for_the_resume(rt, client):
    item = begin(rt, client)
    interaction.login_finished(rt.store, item, 1_700_000_000)
    assert interaction.load(rt.store, item.id, "browser-1").login_at == 1_700_000_000


def test_consent_given_counts_for_that_account_only(rt, client, account):
    item = begin(rt, client)
    interaction.consent_given(rt.store, item, account.id, client.client_id, "openid profile",
                              "192.0.2.1")
    assert interaction.load(rt.store, item.id, "browser-1").consented_by == account.id
    assert has_consent(account.id, client.client_id, "openid profile")
    assert events("consent.granted", account.id)


def test_consent_refused_ends_with_access_denied(rt, client, account):
    item = begin(rt, client)
    error = interaction.consent_refused(rt.store, item, account.id,
                                        rt.clients.get(client.client_id), "192.0.2.1")
    assert isinstance(error, AccessDeniedError)
    # No redirect_uri in the request: the client's only registered one.
    assert error.redirect_uri == client.redirect_uri
    assert interaction.load(rt.store, item.id, "browser-1") is None
    assert not has_consent(account.id, client.client_id, "openid")
    assert events("consent.denied", account.id)


def test_ended_with_error_answers_at_the_requested_redirect_uri(rt, client):
    item = begin(rt, client, redirect_uri=client.redirect_uri)
    error = interaction.ended_with_error(rt.store, item, rt.clients.get(client.client_id),
                                         UnmetAuthenticationRequirementsError)
    assert error.error == "unmet_authentication_requirements"
    assert error.redirect_uri == client.redirect_uri
    # Taken out: a second resume finds nothing to finish.
    assert interaction.finish(rt.store, item) is False
    assert interaction.answer_uri(begin(rt, client), None) is None


def test_no_answer_goes_to_a_redirect_uri_no_longer_registered(rt, client):
    """The registration changed while the request waited (F6 of issue 8's
    attack): the error is shown on a page (no redirect URI), not sent."""
    item = begin(rt, client, redirect_uri=client.redirect_uri + "?removed=1")
    error = interaction.ended_with_error(rt.store, item, rt.clients.get(client.client_id),
                                         UnmetAuthenticationRequirementsError)
    assert error.redirect_uri is None

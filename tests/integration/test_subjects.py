"""Subject identifiers (OIDC Core §8): pairwise per sector for new clients,
public on request; the same ``sub`` in every token and answer of a client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import pytest
import requests

from tests.helpers import Browser, redeem


def _claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def _sub_seen(provider, client, browser, username="", password="") -> dict:
    params = browser.login_for_code(client, username, password,
                                    scope="openid profile offline_access")
    return redeem(provider.url, client, params["code"]).json()


def test_pairwise_subjects_differ_per_sector_and_agree_within_one(provider):
    username, password, public_sub = provider.create_account()
    same_a = provider.create_client(subject_type="pairwise",
                                    redirect_uri="https://rp.example.test/a/callback")
    same_b = provider.create_client(subject_type="pairwise",
                                    redirect_uri="https://rp.example.test/b/callback")
    other = provider.create_client(subject_type="pairwise",
                                   redirect_uri="https://other.example.test/callback")
    public = provider.create_client()
    browser = Browser(provider.url)
    subs = {}
    for name, client in (("a", same_a), ("b", same_b), ("other", other), ("public", public)):
        tokens = _sub_seen(provider, client, browser, username, password)
        username = password = ""
        subs[name] = _claims(tokens["id_token"])["sub"]
    assert subs["a"] == subs["b"]  # one sector (host rp.example.test)
    assert subs["other"] != subs["a"] and subs["public"] == public_sub
    assert public_sub not in (subs["a"], subs["other"]) and len(subs["a"]) == 43


def test_pairwise_sub_is_the_same_everywhere_for_the_client(provider):
    username, password, public_sub = provider.create_account()
    client = provider.create_client(subject_type="pairwise")
    browser = Browser(provider.url)
    tokens = _sub_seen(provider, client, browser, username, password)
    sub = _claims(tokens["id_token"])["sub"]
    assert sub != public_sub
    assert _claims(tokens["access_token"])["sub"] == sub
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info["sub"] == sub
    introspected = requests.post(f"{provider.url}/introspect", auth=client.auth,
                                 data={"token": tokens["refresh_token"]}).json()
    assert introspected["active"] is True and introspected["sub"] == sub
    refreshed = requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    assert _claims(refreshed["id_token"])["sub"] == sub
    # id_token_hint and a claims request for this sub name the signed-in
    # person: no new login is asked for.
    again = browser.go(browser.authorize_url(client, id_token_hint=tokens["id_token"]))
    assert again.status_code == 302 and again.headers["Location"].startswith(
        client.redirect_uri)
    asked = json.dumps({"id_token": {"sub": {"value": sub}}})
    again = browser.go(browser.authorize_url(client, claims=asked))
    assert again.headers["Location"].startswith(client.redirect_uri)
    # The public subject is another person as far as this client knows.
    asked = json.dumps({"id_token": {"sub": {"value": public_sub}}})
    assert "/login" in browser.go(browser.authorize_url(client, claims=asked)).url


def test_pairwise_clients_see_their_own_sid(provider):
    """The SSO session's sid was in every client's tokens: two pairwise
    clients could correlate one person by it."""
    from idp.sessions import load_session

    username, password, _ = provider.create_account()
    sector_a = provider.create_client(subject_type="pairwise",
                                      redirect_uri="https://sid.example.test/a/callback")
    same_sector = provider.create_client(subject_type="pairwise",
                                         redirect_uri="https://sid.example.test/b/callback")
    other = provider.create_client(subject_type="pairwise",
                                   redirect_uri="https://other-sid.example.test/callback",
                                   post_logout_redirect_uri="https://other-sid.example.test/bye")
    public = provider.create_client()
    browser = Browser(provider.url)
    seen = {}
    for name, client in (("a", sector_a), ("same", same_sector), ("other", other),
                         ("public", public)):
        seen[name] = _sub_seen(provider, client, browser, username, password)
        username = password = ""
    handle = browser.session.cookies["idp_sso"]
    session_sid = load_session(provider.runtime.store, handle).sid
    sids = {name: _claims(tokens["id_token"])["sid"] for name, tokens in seen.items()}
    assert sids["public"] == session_sid
    assert session_sid not in (sids["a"], sids["other"])
    assert sids["a"] != sids["other"] and len(sids["a"]) == 22
    assert sids["same"] == sids["a"]  # one sector, like sub
    for name, tokens in seen.items():
        assert _claims(tokens["access_token"])["sid"] == sids[name]
    refreshed = requests.post(f"{provider.url}/token", auth=other.auth, data={
        "grant_type": "refresh_token", "refresh_token": seen["other"]["refresh_token"]}).json()
    assert _claims(refreshed["id_token"])["sid"] == sids["other"]
    assert _claims(refreshed["access_token"])["sid"] == sids["other"]
    # RP-initiated logout recognises the pairwise client's sid in its hint:
    # the session ends without a confirmation page.
    response = browser.session.get(f"{provider.url}/logout", params={
        "id_token_hint": seen["other"]["id_token"],
        "post_logout_redirect_uri": other.post_logout_redirect_uri}, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == other.post_logout_redirect_uri
    assert load_session(provider.runtime.store, handle) is None


def test_a_hint_from_another_session_asks_for_confirmation(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(subject_type="pairwise")
    first = Browser(provider.url)
    tokens = _sub_seen(provider, client, first, username, password)
    second = Browser(provider.url)
    second.login_for_code(client, username, password)
    page = second.session.get(f"{provider.url}/logout",
                              params={"id_token_hint": tokens["id_token"]})
    assert page.status_code == 200 and 'name="confirm"' in page.text


@pytest.fixture
def sector_document():
    """A sector_identifier_uri document served over plain http on 127.0.0.1."""
    state = {"body": b"[]"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, server.server_port
    server.shutdown()
    server.server_close()


def test_sector_identifier_uri(provider):
    from idp.clients.metadata import ClientError, ClientMetadata
    from idp.clients.service import create_client

    uris = ["https://a.example.test/cb", "https://b.example.test/cb"]
    uri = "https://sector.example.test/sector.json"
    documents = {}

    def fetch(url):
        assert url == uri
        return documents["body"]

    with provider.app.app_context():
        rt = provider.runtime
        with pytest.raises(ClientError, match="several hosts"):
            create_client(rt, ClientMetadata("Two hosts", uris))
        documents["body"] = uris[:1]
        with pytest.raises(ClientError, match="does not list"):
            create_client(rt, ClientMetadata("Two hosts", uris, sector_identifier_uri=uri),
                          fetch=fetch)
        documents["body"] = uris
        client, _ = create_client(
            rt, ClientMetadata("Two hosts", uris, sector_identifier_uri=uri), fetch=fetch)
        assert (client.subject_type, client.sector_identifier) == (
            "pairwise", "sector.example.test")
        assert client.sector_identifier_uri == uri
        public, _ = create_client(rt, ClientMetadata("Public", uris, subject_type="public"))
        assert public.sector_identifier is None
        with pytest.raises(ClientError, match="subject type"):
            create_client(rt, ClientMetadata("Odd", uris[:1], subject_type="shared"))


def test_sector_identifier_uri_on_this_network_is_not_fetched(provider, sector_document):
    """The old fetch took http://localhost documents (and any address inside
    the provider's network), and its errors named the port's state."""
    from idp.clients.metadata import ClientError, ClientMetadata
    from idp.clients.sector import UNFETCHABLE
    from idp.clients.service import create_client

    state, port = sector_document
    uris = ["https://a.example.test/cb", "https://b.example.test/cb"]
    state["body"] = json.dumps(uris).encode()
    with provider.app.app_context():
        rt = provider.runtime
        for uri in (f"http://localhost:{port}/sector.json",
                    "http://sector.example.test/sector.json"):
            with pytest.raises(ClientError) as refused:
                create_client(rt, ClientMetadata("Plain http", uris, sector_identifier_uri=uri))
            assert str(refused.value) == "sector_identifier_uri must be an https URL"
        for host in ("localhost", "127.0.0.1", "[::1]", "10.0.0.1"):
            with pytest.raises(ClientError) as refused:
                create_client(rt, ClientMetadata(
                    "Inside", uris, sector_identifier_uri=f"https://{host}:{port}/sector.json"))
            assert str(refused.value) == UNFETCHABLE and str(port) not in str(refused.value)


def test_discovery_offers_both_subject_types(provider):
    meta = requests.get(f"{provider.url}/.well-known/openid-configuration").json()
    assert meta["subject_types_supported"] == ["public", "pairwise"]


def test_a_client_keeps_the_sector_it_was_registered_with(provider):
    """The loopback rule applies to new registrations: a client registered
    when http://127.0.0.1 was a shared sector keeps the stored one, so its
    users' ``sub`` does not change under it."""
    from sqlalchemy import select

    from idp.clients.models import Client
    from idp.extensions import db
    from idp.oidc.subjects import pairwise_subject

    username, password, public_sub = provider.create_account()
    new = provider.create_client(subject_type="pairwise")
    older = provider.create_client(subject_type="pairwise")
    with provider.app.app_context():
        rows = {row.client_id: row for row in db.session.scalars(
            select(Client).where(Client.client_id.in_([new.client_id, older.client_id])))}
        assert rows[new.client_id].sector_identifier is None
        rows[older.client_id].sector_identifier = "127.0.0.1"
        db.session.commit()
        provider.runtime.clients.invalidate(older.client_id)
    browser = Browser(provider.url)
    seen_by_older = _claims(_sub_seen(provider, older, browser, username, password)["id_token"])
    seen_by_new = _claims(_sub_seen(provider, new, browser)["id_token"])
    key = provider.runtime.pairwise_key
    assert seen_by_older["sub"] == pairwise_subject(key, "127.0.0.1", public_sub)
    assert seen_by_new["sub"] == pairwise_subject(key, new.client_id, public_sub)

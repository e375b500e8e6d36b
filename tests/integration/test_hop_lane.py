"""The single sign-on hop answered before Flask (idp.oidc.hop): a code for
a browser with a live SSO session is the answer the Flask view gives
(status and headers, the code aside); every other authorization request
is left to the view."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.test import EnvironBuilder

from tests.helpers import Browser, pkce_pair, redeem, wsgi_answer


def _hop(provider):
    hop = provider.app.extensions["idp.public_documents"]._downstream._downstream
    assert type(hop).__name__ == "SingleSignOnHop"
    return hop


def _cookie_header(browser: Browser) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in browser.session.cookies)


def _authorize(provider, browser: Browser | None, client, *, method="GET", cookie=None,
               **params):
    query = {"response_type": "code", "client_id": client.client_id,
             "redirect_uri": client.redirect_uri, "scope": "openid profile", "state": "s1"}
    query.update({k: v for k, v in params.items() if v is not None})
    headers = {}
    if cookie is not None or browser is not None:
        headers["Cookie"] = cookie if cookie is not None else _cookie_header(browser)

    def make() -> dict:
        return EnvironBuilder(path="/authorize", method=method, base_url=provider.url,
                              headers=headers, query_string=urlencode(query)).get_environ()
    return make


def _without_code(answer: tuple[str, dict[str, str], bytes]) -> tuple:
    status, headers, body = answer
    location = urlsplit(headers["location"])
    params = parse_qs(location.query)
    assert len(params.pop("code")) == 1
    rest = {k: v for k, v in headers.items() if k != "location"}
    return status, rest, body, location._replace(query="").geturl(), params


@pytest.fixture
def signed_in(provider):
    """``(browser, client, other client)``: a browser signed in through
    ``client`` (trusted), and an untrusted client it consented to."""
    username, password, _ = provider.create_account(email="hop@example.org")
    client = provider.create_client()
    consented = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password)
    browser.go(browser.authorize_url(consented))
    return browser, client, consented


@pytest.fixture
def audit_events(monkeypatch):
    """Names of the deferred audit events of the code flow while the test runs."""
    import idp.oidc.flows.authorization_code as flow

    seen: list[str] = []
    original = flow.record_deferred

    def counted(writer, event, *args, **kwargs):
        seen.append(event)
        return original(writer, event, *args, **kwargs)

    monkeypatch.setattr(flow, "record_deferred", counted)
    return seen


@pytest.mark.parametrize("case", ["plain", "nonce", "pkce", "query mode", "consented client",
                                  "no state", "prompt none"])
def test_a_hop_is_the_viewswsgi_answer(provider, signed_in, audit_events, case):
    browser, client, consented = signed_in
    verifier, challenge = pkce_pair()
    params = {
        "plain": {}, "nonce": {"nonce": "n-1"},
        "pkce": {"code_challenge": challenge, "code_challenge_method": "S256"},
        "query mode": {"response_mode": "query"}, "consented client": {},
        "no state": {"state": None}, "prompt none": {"prompt": "none"},
    }[case]
    target = consented if case == "consented client" else client
    make = _authorize(provider, browser, target, **params)
    hop = _hop(provider)
    audit_events.clear()
    fast = wsgi_answer(hop, make())
    assert fast[0] == "302 FOUND", fast
    assert audit_events == ["authorization.granted"]
    view = wsgi_answer(hop._downstream, make())
    assert _without_code(fast) == _without_code(view)
    assert fast[1]["location"].startswith(target.redirect_uri + "?code=")
    assert fast[1]["cache-control"] == "no-store"
    code = parse_qs(urlsplit(fast[1]["location"]).query)["code"][0]
    tokens = redeem(provider.url, target, code,
                    verifier if case == "pkce" else None).json()
    assert "id_token" in tokens, tokens


@pytest.mark.parametrize("case, expected", [
    ("no cookie", "302 /login"), ("unknown cookie", "302 /login"),
    ("prompt login", "302 /login"), ("prompt consent", "302 /consent"),
    ("max_age 0", "302 /login"), ("form_post", "200 code"), ("fragment", "302 error"),
    ("unknown client", "400"), ("wrong redirect_uri", "400"), ("nul", "400"),
    ("post", "303 code"), ("untrusted, no consent", "302 /consent"),
    ("repeated scope", "400"), ("head", "302 code"),
])
def test_every_other_authorization_is_the_views(provider, signed_in, audit_events, case,
                                               expected):
    browser, client, consented = signed_in
    other = provider.create_client(trusted=False)
    unknown = provider.create_client()
    unknown.client_id = "no-such-client"
    make = {
        "no cookie": _authorize(provider, None, client),
        "unknown cookie": _authorize(provider, None, client, cookie="idp_sso=garbage"),
        "prompt login": _authorize(provider, browser, client, prompt="login"),
        "prompt consent": _authorize(provider, browser, consented, prompt="consent"),
        "max_age 0": _authorize(provider, browser, client, max_age="0"),
        "form_post": _authorize(provider, browser, client, response_mode="form_post"),
        "fragment": _authorize(provider, browser, client, response_mode="fragment"),
        "unknown client": _authorize(provider, browser, unknown),
        "wrong redirect_uri": _authorize(provider, browser, client,
                                         redirect_uri="http://127.0.0.1:9/elsewhere"),
        "nul": _authorize(provider, browser, client, state="a\x00b"),
        "post": _authorize(provider, browser, client, method="POST"),
        "untrusted, no consent": _authorize(provider, browser, other),
        "repeated scope": lambda: {**_authorize(provider, browser, client)(),
                                   "QUERY_STRING": urlencode({
                                       "response_type": "code", "client_id": client.client_id,
                                       "redirect_uri": client.redirect_uri,
                                       "scope": "openid"}) + "&scope=openid"},
        "head": _authorize(provider, browser, client, method="HEAD"),
    }[case]
    hop = _hop(provider)
    assert hop.answer(make()) is None
    audit_events.clear()
    status, headers, body = wsgi_answer(hop, make())
    code, _, what = expected.partition(" ")
    assert status.startswith(code), (status, headers)
    location = headers.get("location", "")
    if what == "code":
        assert audit_events == ["authorization.granted"]
        assert "code=" in location or 'name="code"' in body.decode()
    elif what == "error":
        assert "error=" in location
    elif what:
        assert urlsplit(location).path == what, location
    if what != "code":
        assert "authorization.granted" not in audit_events


def test_an_ended_session_is_the_views(provider, signed_in):
    """Logging out everywhere moves the account's session generation on:
    the hop finds no session, and the view sends the browser to log in."""
    from idp import sessions
    from idp.accounts.models import Account
    from idp.extensions import db
    from idp.unit_of_work import unit

    browser, client, _ = signed_in
    make = _authorize(provider, browser, client)
    assert wsgi_answer(_hop(provider), make())[0] == "302 FOUND"
    handle = browser.session.cookies[provider.runtime.settings["session"]["cookie_name"]]
    with provider.app.app_context(), unit():
        session = sessions.load_session(provider.runtime.store, handle)
        sessions.end_all(provider.runtime, db.session.get(Account, session.account_id),
                         "logout_everywhere", revoke_grants=True)
    assert _hop(provider).answer(make()) is None
    status, headers, _ = wsgi_answer(_hop(provider), make())
    assert status == "302 FOUND" and urlsplit(headers["location"]).path == "/login"


def test_a_raw_utf_8_query_is_the_views_answer(provider, signed_in, audit_events):
    """A query sent without percent-encoding reaches the application as
    PEP 3333 has it, UTF-8 read as latin-1: the hop answers it as the view."""
    browser, client, _ = signed_in

    def make() -> dict:
        environ = _authorize(provider, browser, client)()
        environ["QUERY_STRING"] += "&nonce=" + "n\u00fc".encode().decode("latin-1")
        return environ

    fast = wsgi_answer(_hop(provider), make())
    assert fast[0] == "302 FOUND" and audit_events == ["authorization.granted"]
    assert _without_code(fast) == _without_code(wsgi_answer(_hop(provider)._downstream,
                                                             make()))


def test_a_query_that_is_not_utf_8_is_a_400(provider, signed_in):
    """Found by the attack on issue 9: Werkzeug cannot decode such a query,
    which was a 500 from the view (and, in the hop, from the bridge)."""
    browser, client, _ = signed_in

    def make() -> dict:
        environ = _authorize(provider, browser, client)()
        environ["QUERY_STRING"] += "&nonce=\xff"
        return environ

    assert _hop(provider).answer(make()) is None
    status, _, body = wsgi_answer(_hop(provider), make())
    assert status.startswith("400"), body[:200]


def test_a_store_fault_while_issuing_leaves_one_code(provider, signed_in, audit_events,
                                                     monkeypatch):
    """Found by the attack on issue 9: the audit event was queued before the
    code was stored, so a store fault there, the hop handing the request on,
    and the view issuing again left two events for one code delivered."""
    from idp.store import StoreError

    browser, client, _ = signed_in
    store = provider.runtime.store
    original, faults = store.put_many_counted, [1]

    def once(*args):
        if faults:
            faults.pop()
            raise StoreError("store down for a moment")
        return original(*args)

    monkeypatch.setattr(store, "put_many_counted", once)
    status, headers, _ = wsgi_answer(_hop(provider), _authorize(provider, browser, client)())
    assert status == "302 FOUND" and "code=" in headers["location"]
    assert audit_events == ["authorization.granted"] and not faults


def test_a_hop_reads_the_session_and_the_clients_generation_together(provider, signed_in,
                                                                    monkeypatch):
    """The session and the clients' generation come in one store round
    trip (the generation not at all where the store pushes it); then the
    account's version; then the count of codes and the code, together."""
    browser, client, _ = signed_in
    store = provider.runtime.store
    calls = []
    for name in ("get", "get_many", "incr", "put_many", "put_many_counted", "put",
                 "replace"):
        original = getattr(store, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    make = _authorize(provider, browser, client)
    assert _hop(provider).answer(make()) is not None
    calls.clear()
    assert _hop(provider).answer(make()) is not None
    assert calls == ["get_many", "get", "put_many_counted"]

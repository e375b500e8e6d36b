"""UserInfo, introspection, client-credentials tokens and refreshes answered
before Flask (idp.oidc.lanes): a success is the answer the Flask view gives
(status, body, headers, CORS included); every other request and every
failure is left to the view, which records the one audit event; a lane
reads the store once per request, as a request in Flask does."""

from __future__ import annotations

import base64
import io
import json
import uuid

import jwt
import pytest
import requests
from werkzeug.test import EnvironBuilder

from idp.oidc.lanes import FORM_TYPE
from idp.store import StoreError
from tests.helpers import Browser, redeem, wsgi_answer

SPA = "https://spa.example.test"
STRANGER = "https://stranger.example.test"
@pytest.fixture(scope="module")
def access_token(provider) -> str:
    """An access token (``openid profile email``) of a client allowed from SPA."""
    tag = uuid.uuid4().hex[:8]
    client = provider.create_client(allowed_origins=[SPA],
                                    redirect_uri=f"http://127.0.0.1:9/{tag}/cb")
    username, password, _ = provider.create_account(email=f"{tag}@example.org",
                                                    name="Lane User")
    code = Browser(provider.url).login_for_code(client, username, password,
                                                scope="openid profile email")["code"]
    return redeem(provider.url, client, code).json()["access_token"]


@pytest.fixture(scope="module")
def introspection(provider):
    """``(client, tokens, resource server, client_secret_post client)``: a
    client allowed from SPA with its tokens (``openid offline_access``), a
    resource server, and a client that authenticates in the body only."""
    tag = uuid.uuid4().hex[:8]
    client = provider.create_client(allowed_origins=[SPA],
                                    redirect_uri=f"http://127.0.0.1:9/{tag}/cb")
    username, password, _ = provider.create_account()
    code = Browser(provider.url).login_for_code(client, username, password,
                                                scope="openid offline_access")["code"]
    tokens = redeem(provider.url, client, code).json()
    api = provider.create_client(grant_types=["client_credentials"], resource_server=True)
    post = provider.create_client(grant_types=["client_credentials"],
                                  auth_method="client_secret_post", strict_auth_method=True)
    return client, tokens, api, post


def _lane(provider):
    lane = provider.app.extensions["idp.public_documents"]._downstream
    assert type(lane).__name__ == "ResourceLanes"
    return lane


def _environ(provider, *, method="GET", headers=None, **kwargs) -> dict:
    return EnvironBuilder(path="/userinfo", method=method, base_url=provider.url,
                          headers=headers or {}, **kwargs).get_environ()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("origin", [None, SPA, STRANGER])
def test_a_success_is_the_viewswsgi_answer(provider, access_token, method, origin):
    lane = _lane(provider)
    headers = {"Authorization": f"Bearer {access_token}"}
    if origin:
        headers["Origin"] = origin
    environ = _environ(provider, method=method, headers=headers)
    assert lane.answer(dict(environ)) is not None
    status, fast_headers, body = wsgi_answer(lane, environ)
    assert status == "200 OK" and b'"name":"Lane User"' in body
    assert wsgi_answer(lane._downstream, environ) == (status, fast_headers, body)
    assert (fast_headers.get("access-control-allow-origin") == SPA) == (origin == SPA)


@pytest.mark.parametrize("case", ["bad token", "no header", "empty bearer", "token in body",
                                  "query", "preflight", "nul in query"])
def test_everything_else_is_the_views(provider, access_token, case):
    lane = _lane(provider)
    bearer = {"Authorization": f"Bearer {access_token}"}
    make = {
        "bad token": lambda: _environ(provider, headers={"Authorization": "Bearer x.y.z",
                                                         "Origin": SPA}),
        "no header": lambda: _environ(provider),
        "empty bearer": lambda: _environ(provider, headers={"Authorization": "Bearer  "}),
        "token in body": lambda: _environ(provider, method="POST", headers=bearer,
                                          data={"access_token": access_token}),
        "query": lambda: _environ(provider, headers=bearer, query_string="a=b"),
        "preflight": lambda: _environ(provider, method="OPTIONS", headers={
            "Origin": SPA, "Access-Control-Request-Method": "GET"}),
        "nul in query": lambda: _environ(provider, headers=bearer, query_string="a=%00"),
    }[case]
    # Each call gets its own environ: a body is read once.
    assert lane.answer(make()) is None
    status, headers, body = wsgi_answer(lane, make())
    assert (status, headers, body) == wsgi_answer(lane._downstream, make())
    expected = {"bad token": "401", "no header": "401", "empty bearer": "401",
                "token in body": "400", "query": "200", "preflight": "204",
                "nul in query": "400"}[case]
    assert status.startswith(expected)


def test_a_store_failure_is_the_views_503(provider, access_token, monkeypatch):
    lane = _lane(provider)

    def down(*_args, **_kwargs):
        raise StoreError("store down")

    monkeypatch.setattr(provider.runtime.store, "get_many", down)
    monkeypatch.setattr(provider.runtime.store, "get", down)
    environ = _environ(provider, headers={"Authorization": f"Bearer {access_token}"})
    assert lane.answer(dict(environ)) is None
    status, _, body = wsgi_answer(lane, environ)
    assert status.startswith("503") and b"temporarily_unavailable" in body


def test_one_store_round_trip_per_request(provider, access_token, monkeypatch):
    """Outside a Flask request, the clients' generation was read again on
    every client lookup (three round trips a request): the lane's context
    memoises it for its one request."""
    lane = _lane(provider)
    store = provider.runtime.store
    calls = []
    for name in ("get", "get_many"):
        original = getattr(store, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    environ = _environ(provider, headers={"Authorization": f"Bearer {access_token}"})
    assert lane.answer(dict(environ)) is not None
    calls.clear()
    assert lane.answer(dict(environ)) is not None
    assert calls == ["get_many"]


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _introspection(provider, data, *, auth=None, origin=None, query="", content_type=None,
                   method="POST"):
    headers = {"Authorization": auth} if auth else {}
    if origin:
        headers["Origin"] = origin
    if content_type:
        headers["Content-Type"] = content_type
    return lambda: EnvironBuilder(path="/introspect", method=method, base_url=provider.url,
                                  headers=headers, data=data, query_string=query
                                  ).get_environ()


@pytest.fixture
def audit_events(monkeypatch):
    """Names of the audit events recorded while the test runs."""
    import idp.oidc.client_auth
    import idp.oidc.resources

    seen: list[str] = []
    for module in (idp.oidc.resources, idp.oidc.client_auth):
        original = module.record_deferred

        def counted(writer, event, *args, _original=original, **kwargs):
            seen.append(event)
            return _original(writer, event, *args, **kwargs)

        monkeypatch.setattr(module, "record_deferred", counted)
    return seen


@pytest.mark.parametrize("case", ["access token", "refresh token", "hint", "garbage",
                                  "resource server", "from SPA", "from a stranger"])
def test_an_introspection_is_the_viewswsgi_answer(provider, introspection, audit_events, case):
    client, tokens, api, _ = introspection
    own = _basic(client.client_id, client.client_secret)
    make = {
        "access token": _introspection(provider, {"token": tokens["access_token"]}, auth=own),
        "refresh token": _introspection(provider, {"token": tokens["refresh_token"]},
                                        auth=own),
        "hint": _introspection(provider, {"token": tokens["access_token"],
                                          "token_type_hint": "refresh_token"}, auth=own),
        "garbage": _introspection(provider, {"token": "garbage"}, auth=own),
        "resource server": _introspection(provider, {"token": tokens["access_token"]},
                                          auth=_basic(api.client_id, api.client_secret)),
        "from SPA": _introspection(provider, {"token": tokens["access_token"]}, auth=own,
                                   origin=SPA),
        "from a stranger": _introspection(provider, {"token": tokens["access_token"]},
                                          auth=own, origin=STRANGER),
    }[case]
    lane = _lane(provider)
    assert lane.answer(make()) is not None
    audit_events.clear()
    status, headers, body = wsgi_answer(lane, make())
    assert audit_events == ["token.introspected"]
    assert status == "200 OK"
    assert (status, headers, body) == wsgi_answer(lane._downstream, make())
    active = json.loads(body)["active"]
    assert active is (case != "garbage")
    assert (headers.get("access-control-allow-origin") == SPA) == (case == "from SPA")


@pytest.mark.parametrize("case, expected", [
    ("wrong secret", "401"), ("secret in the body", "200"), ("registered for the body", "401"),
    ("repeated token", "400"), ("client_id too", "200"), ("query", "200"),
    ("json", "400"), ("no token", "400"), ("nul in token", "400"), ("non-ascii", "200"),
    ("GET", "405"), ("not form-encoded", "400"),
])
def test_every_other_introspection_is_the_views(provider, introspection, audit_events, case,
                                                 expected):
    client, tokens, _, post = introspection
    own = _basic(client.client_id, client.client_secret)
    token = tokens["access_token"]
    make = {
        "wrong secret": _introspection(provider, {"token": token},
                                       auth=_basic(client.client_id, "wrong")),
        "secret in the body": _introspection(provider, {
            "token": token, "client_id": post.client_id, "client_secret": post.client_secret}),
        "registered for the body": _introspection(
            provider, {"token": token}, auth=_basic(post.client_id, post.client_secret)),
        "repeated token": _introspection(provider, f"token={token}&token={token}", auth=own,
                                         content_type="application/x-www-form-urlencoded"),
        "client_id too": _introspection(provider, {"token": token,
                                                   "client_id": client.client_id}, auth=own),
        "query": _introspection(provider, {"token": token}, auth=own, query="a=b"),
        "json": _introspection(provider, json.dumps({"token": token}), auth=own,
                               content_type="application/json"),
        "no token": _introspection(provider, {"token_type_hint": "access_token"}, auth=own),
        "nul in token": _introspection(provider, "token=a%00b", auth=own,
                                       content_type="application/x-www-form-urlencoded"),
        "non-ascii": _introspection(provider, "token=%C3%A9", auth=own,
                                    content_type="application/x-www-form-urlencoded"),
        "GET": _introspection(provider, None, auth=own, method="GET"),
        "not form-encoded": _introspection(provider, f"token={token}", auth=own,
                                           content_type="text/plain"),
    }[case]
    lane = _lane(provider)
    assert lane.answer(make()) is None
    audit_events.clear()
    status, headers, body = wsgi_answer(lane, make())
    assert status.startswith(expected), (status, body)
    # One event from the view (introspected, or the failed authentication);
    # none when the request is refused before either.
    assert len(audit_events) == (1 if expected in ("200", "401") else 0), audit_events
    assert (status, headers, body) == wsgi_answer(lane._downstream, make())


@pytest.fixture(scope="module")
def services(provider):
    """``(service, strict, web)``: a client-credentials client allowed from SPA
    with scopes ``openid profile email``; one that authenticates in the body
    only; a web client without the grant."""
    service = provider.create_client(grant_types=["client_credentials"],
                                     allowed_origins=[SPA], scope="openid profile email")
    strict = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="client_secret_post", strict_auth_method=True)
    web = provider.create_client()
    return service, strict, web


def _token_request(provider, data, *, auth=None, origin=None, content_type=None):
    headers = {"Authorization": auth} if auth else {}
    if origin:
        headers["Origin"] = origin
    if content_type:
        headers["Content-Type"] = content_type
    return lambda: EnvironBuilder(path="/token", method="POST", base_url=provider.url,
                                  headers=headers, data=data).get_environ()


def _without_token(answer: tuple[str, dict[str, str], bytes]) -> tuple:
    """An answer with what differs between two issued tokens left out: the
    token itself and so the length of the body."""
    status, headers, body = answer
    assert headers["content-length"] == str(len(body))
    payload = json.loads(body)
    token = payload.pop("access_token", None)
    return status, {k: v for k, v in headers.items() if k != "content-length"}, payload, \
        token is not None


@pytest.mark.parametrize("case", ["no scope", "scope", "repeated scope value", "from SPA",
                                  "from a stranger"])
def test_a_client_credentials_token_is_the_viewswsgi_answer(provider, services, audit_events,
                                                        case, monkeypatch):
    import idp.oidc.flows.client_credentials

    service, _, _ = services
    issued: list[str] = []
    original = idp.oidc.flows.client_credentials.record_deferred

    def counted(writer, event, *args, **kwargs):
        issued.append(event)
        return original(writer, event, *args, **kwargs)

    monkeypatch.setattr(idp.oidc.flows.client_credentials, "record_deferred", counted)
    auth = _basic(service.client_id, service.client_secret)
    make = {
        "no scope": _token_request(provider, {"grant_type": "client_credentials"}, auth=auth),
        "scope": _token_request(provider, {"grant_type": "client_credentials",
                                           "scope": "profile"}, auth=auth),
        "repeated scope value": _token_request(provider, {
            "grant_type": "client_credentials", "scope": "email profile email"},
            auth=auth),
        "from SPA": _token_request(provider, {"grant_type": "client_credentials"}, auth=auth,
                                   origin=SPA),
        "from a stranger": _token_request(provider, {"grant_type": "client_credentials"},
                                          auth=auth, origin=STRANGER),
    }[case]
    lane = _lane(provider)
    assert lane.answer(make()) is not None
    issued.clear()
    fast = wsgi_answer(lane, make())
    assert issued == ["token.issued"]
    assert fast[0] == "200 OK" and fast[1]["pragma"] == "no-cache"
    assert _without_token(fast) == _without_token(wsgi_answer(lane._downstream, make()))
    claims = jwt.decode(json.loads(fast[2])["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == service.client_id and claims["sub"] == service.client_id
    assert (fast[1].get("access-control-allow-origin") == SPA) == (case == "from SPA")


@pytest.mark.parametrize("case, expected", [
    ("scope not allowed", "400"), ("openid", "400"), ("grant not registered", "400"),
    ("wrong secret", "401"), ("secret in the body", "200"), ("registered for the body", "401"),
    ("another grant", "400"), ("repeated grant_type", "400"), ("extra parameter", "200"),
])
def test_every_other_token_request_is_the_views(provider, services, case, expected):
    service, strict, web = services
    auth = _basic(service.client_id, service.client_secret)
    grant = {"grant_type": "client_credentials"}
    make = {
        "scope not allowed": _token_request(provider, {**grant, "scope": "phone"},
                                            auth=auth),
        "openid": _token_request(provider, {**grant, "scope": "openid"}, auth=auth),
        "grant not registered": _token_request(provider, grant,
                                               auth=_basic(web.client_id, web.client_secret)),
        "wrong secret": _token_request(provider, grant, auth=_basic(service.client_id, "no")),
        "secret in the body": _token_request(provider, {
            **grant, "client_id": strict.client_id, "client_secret": strict.client_secret}),
        "registered for the body": _token_request(
            provider, grant, auth=_basic(strict.client_id, strict.client_secret)),
        "another grant": _token_request(provider, {"grant_type": "authorization_code",
                                                   "code": "x"}, auth=auth),
        "repeated grant_type": _token_request(
            provider, "grant_type=client_credentials&grant_type=client_credentials", auth=auth,
            content_type="application/x-www-form-urlencoded"),
        "extra parameter": _token_request(provider, {**grant, "resource": "https://api.test"},
                                          auth=auth),
    }[case]
    lane = _lane(provider)
    assert lane.answer(make()) is None
    answer = wsgi_answer(lane, make())
    assert answer[0].startswith(expected), answer
    assert _without_token(answer) == _without_token(wsgi_answer(lane._downstream, make()))


def _raw(provider, path: str, body: bytes, *, auth: str, content_type: str = FORM_TYPE,
         length: str | None = None, terminated: bool = False, chunked: bool = False,
         method: str = "POST"):
    """An environ as a plain WSGI server may hand it over: the
    ``Content-Length`` as sent, the input marked terminated or not."""
    def make() -> dict:
        environ = EnvironBuilder(path=path, method=method, base_url=provider.url,
                                 headers={"Authorization": auth}).get_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_TYPE"] = content_type
        environ.pop("CONTENT_LENGTH", None)
        if length is not None:
            environ["CONTENT_LENGTH"] = length
        if terminated:
            environ["wsgi.input_terminated"] = True
        if chunked:
            environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        return environ
    return make



@pytest.mark.parametrize("case", ["nbsp after the type", "nel before the type", "plus length",
                                  "underscore length", "chunked"])
def test_what_werkzeug_reads_otherwise_is_the_views(provider, services, case):
    """Found by the attack on issue 9: a type Python's strip() cleans but
    Werkzeug does not, a length int() reads but Werkzeug does not, a body
    of unknown length: the view saw no form (400) where the lane issued a
    token. Such requests are the view's now."""
    service, _, _ = services
    auth = _basic(service.client_id, service.client_secret)
    body = b"grant_type=client_credentials"
    make = {
        "nbsp after the type": _raw(provider, "/token", body, auth=auth,
                                    content_type=FORM_TYPE + "\xa0", length=str(len(body))),
        "nel before the type": _raw(provider, "/token", body, auth=auth,
                                    content_type="\x85" + FORM_TYPE, length=str(len(body))),
        "plus length": _raw(provider, "/token", body, auth=auth, length=f"+{len(body)}"),
        "underscore length": _raw(provider, "/token", body, auth=auth,
                                  length=f"{len(body) // 10}_{len(body) % 10}"),
        "chunked": _raw(provider, "/token", body, auth=auth, chunked=True, terminated=True),
    }[case]
    lane = _lane(provider)
    assert lane.answer(make()) is None
    status, _, body_seen = wsgi_answer(lane, make())
    # A server that decoded the chunks hands the view the whole body.
    assert status.startswith("200" if case == "chunked" else "400"), body_seen
    assert status == wsgi_answer(lane._downstream, make())[0]


def test_a_terminated_input_is_read_whole_as_werkzeug_does(provider, services):
    """A server that marks the input terminated hands over the whole body,
    whatever Content-Length says: the scope after the length is granted,
    by the lane as by the view."""
    service, _, _ = services
    body = b"grant_type=client_credentials&scope=profile"
    make = _raw(provider, "/token", body, auth=_basic(service.client_id, service.client_secret),
                length="29", terminated=True)
    lane = _lane(provider)
    assert lane.answer(make()) is not None
    fast = json.loads(wsgi_answer(lane, make())[2])
    assert fast["scope"] == "profile"
    assert json.loads(wsgi_answer(lane._downstream, make())[2])["scope"] == "profile"


def test_a_userinfo_post_with_a_body_of_unknown_length_is_the_views(provider, access_token):
    make = _raw(provider, "/userinfo", f"access_token={access_token}".encode(),
                auth=f"Bearer {access_token}", terminated=True)
    lane = _lane(provider)
    assert lane.answer(make()) is None
    status, _, body = wsgi_answer(lane, make())
    assert status.startswith("400") and b"one place only" in body


@pytest.fixture
def refreshable(provider):
    """``(client, refresh token, other client)``: a client allowed from SPA
    with a fresh grant (``openid offline_access email``) and its refresh
    token, and another client of the same kind."""
    tag = uuid.uuid4().hex[:8]
    client = provider.create_client(allowed_origins=[SPA],
                                    redirect_uri=f"http://127.0.0.1:9/{tag}/cb")
    username, password, _ = provider.create_account(email=f"{tag}@example.org")
    code = Browser(provider.url).login_for_code(client, username, password,
                                                scope="openid offline_access email")["code"]
    tokens = redeem(provider.url, client, code).json()
    return client, tokens["refresh_token"], provider.create_client()


@pytest.fixture
def issued_events(monkeypatch):
    """Names of the audit events of token issuance and grant revocation
    recorded while the test runs."""
    import idp.authorizations.service
    import idp.oidc.flows.user_tokens

    seen: list[str] = []
    original = idp.oidc.flows.user_tokens.record_deferred

    def deferred(writer, event, *args, **kwargs):
        seen.append(event)
        return original(writer, event, *args, **kwargs)

    recorded = idp.authorizations.service.record

    def in_transaction(event, *args, **kwargs):
        seen.append(event)
        return recorded(event, *args, **kwargs)

    monkeypatch.setattr(idp.oidc.flows.user_tokens, "record_deferred", deferred)
    monkeypatch.setattr(idp.authorizations.service, "record", in_transaction)
    return seen


def _refresh_request(provider, client, refresh_token, *, origin=None, **extra):
    return _token_request(provider, {"grant_type": "refresh_token",
                                     "refresh_token": refresh_token, **extra},
                          auth=_basic(client.client_id, client.client_secret), origin=origin)


def _without_tokens(answer: tuple[str, dict[str, str], bytes]) -> tuple:
    """An answer without what differs between two rotations: the tokens
    (each present) and the body's length."""
    status, headers, body = answer
    payload = json.loads(body)
    present = {name: payload.pop(name, None) is not None
               for name in ("access_token", "id_token", "refresh_token")}
    return status, {k: v for k, v in headers.items() if k != "content-length"}, payload, present


@pytest.mark.parametrize("case", ["no scope", "narrower scope", "from SPA", "from a stranger"])
def test_a_refresh_is_the_viewswsgi_answer(provider, refreshable, issued_events, case):
    """A rotation before Flask answers what the view answers, records one
    ``token.issued`` once it is committed, and uses the token up: the next
    use is a replay, which the view answers by revoking the family."""
    client, first, _ = refreshable
    extra = {"scope": "openid offline_access"} if case == "narrower scope" else {}
    origin = {"from SPA": SPA, "from a stranger": STRANGER}.get(case)
    lane = _lane(provider)
    fast = wsgi_answer(lane, _refresh_request(provider, client, first, origin=origin, **extra)())
    assert fast[0] == "200 OK", fast
    assert issued_events == ["token.issued"]
    second = json.loads(fast[2])["refresh_token"]
    view = wsgi_answer(lane._downstream,
                       _refresh_request(provider, client, second, origin=origin, **extra)())
    assert _without_tokens(fast) == _without_tokens(view)
    assert json.loads(fast[2])["scope"] == ("openid offline_access" if extra
                                           else "openid offline_access email")
    assert (fast[1].get("access-control-allow-origin") == SPA) == (case == "from SPA")
    claims = jwt.decode(json.loads(fast[2])["id_token"], options={"verify_signature": False})
    assert claims["aud"] == client.client_id and "nonce" not in claims
    issued_events.clear()
    replay = _refresh_request(provider, client, first)
    assert lane.answer(replay()) is None
    assert issued_events == []
    status, _, body = wsgi_answer(lane, replay())
    assert status.startswith("400") and json.loads(body)["error"] == "invalid_grant"
    assert issued_events == ["grant.revoked"]
    newest = json.loads(view[2])["refresh_token"]
    assert wsgi_answer(lane, _refresh_request(provider, client, newest)())[0].startswith("400")


@pytest.mark.parametrize("case, expected", [
    ("wider scope", "invalid_scope"), ("unknown token", "invalid_grant"),
    ("another client's token", "invalid_grant"), ("wrong secret", "invalid_client"),
    ("no refresh token", "invalid_request"), ("extra parameter", None),
])
def test_every_other_refresh_is_the_views_and_leaves_the_token_unused(
        provider, refreshable, issued_events, case, expected):
    """A refresh the lane does not answer leaves nothing written: the view
    answers it, and the token still rotates afterwards (one
    ``token.issued``, no revocation)."""
    client, token, other = refreshable
    make = {
        "wider scope": _refresh_request(provider, client, token, scope="openid phone"),
        "unknown token": _refresh_request(provider, client, "x" * 43),
        "another client's token": _refresh_request(provider, other, token),
        "wrong secret": _token_request(provider, {"grant_type": "refresh_token",
                                                  "refresh_token": token},
                                       auth=_basic(client.client_id, "wrong")),
        "no refresh token": _token_request(provider, {"grant_type": "refresh_token"},
                                           auth=_basic(client.client_id, client.client_secret)),
        "extra parameter": _refresh_request(provider, client, token,
                                            resource="https://api.test"),
    }[case]
    lane = _lane(provider)
    assert lane.answer(make()) is None
    assert issued_events == []
    if expected is None:  # the view rotates it
        assert wsgi_answer(lane, make())[0] == "200 OK"
        assert issued_events == ["token.issued"]
        return
    status, _, body = wsgi_answer(lane, make())
    assert json.loads(body)["error"] == expected, body
    assert wsgi_answer(lane, _refresh_request(provider, client, token)())[0] == "200 OK"
    assert issued_events == ["token.issued"]


def test_a_refresh_of_a_revoked_grant_is_the_views(provider, refreshable, issued_events):
    client, token, _ = refreshable
    assert requests.post(f"{provider.url}/revoke", data={"token": token},
                         auth=(client.client_id, client.client_secret)).status_code == 200
    issued_events.clear()
    make = _refresh_request(provider, client, token)
    assert _lane(provider).answer(make()) is None
    status, _, body = wsgi_answer(_lane(provider), make())
    assert status.startswith("400") and json.loads(body)["error"] == "invalid_grant"
    assert issued_events == []

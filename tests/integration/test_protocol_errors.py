"""Unexpected errors answer without a trace, and nothing that names the
provider comes from the request's Host header (issue 7)."""

from __future__ import annotations

import logging

import jwt as pyjwt
import pytest
import requests
from werkzeug.exceptions import InternalServerError

from idp.config import ConfigError
from idp.oidc import blueprint, resources
from tests.conftest import make_settings

SECRET_DETAIL = "password=hunter2 in /srv/idp/secret_module.py"
FORGED_HOST = {"Host": "evil.example"}


def _boom(*_args, **_kwargs):
    raise RuntimeError(SECRET_DETAIL)


def _service_client(provider):
    return provider.create_client(grant_types=["client_credentials"], scope="profile")


def test_token_endpoint_ignores_a_forged_host_header(provider):
    """Authlib refused the http://evil.example/token URL built from Host
    (insecure_transport) and the token endpoint answered 500."""
    client = _service_client(provider)
    response = requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                             auth=client.auth, headers=FORGED_HOST)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert pyjwt.decode(token, options={"verify_signature": False})["iss"] == provider.url
    introspected = requests.post(f"{provider.url}/introspect", data={"token": token},
                                 auth=client.auth, headers=FORGED_HOST)
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    revoked = requests.post(f"{provider.url}/revoke", data={"token": token}, auth=client.auth,
                            headers=FORGED_HOST)
    assert revoked.status_code == 200, revoked.text
    again = requests.post(f"{provider.url}/introspect", data={"token": token}, auth=client.auth)
    assert again.json() == {"active": False}


def test_nothing_names_the_forged_host(provider):
    client = provider.create_client()
    discovery = requests.get(f"{provider.url}/.well-known/openid-configuration",
                             headers=FORGED_HOST)
    assert discovery.json()["issuer"] == provider.url
    assert "evil.example" not in discovery.text
    authorize = requests.get(f"{provider.url}/authorize", headers=FORGED_HOST, params={
        "response_type": "code", "client_id": client.client_id, "scope": "openid",
        "redirect_uri": client.redirect_uri}, allow_redirects=False)
    assert authorize.status_code == 302
    assert "evil.example" not in authorize.headers["Location"]


@pytest.mark.parametrize("error", [RuntimeError(SECRET_DETAIL), InternalServerError()])
def test_unexpected_error_at_a_protocol_endpoint_is_json_server_error(provider, monkeypatch,
                                                                     caplog, error):
    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(resources, "userinfo", fail)
    with caplog.at_level(logging.ERROR, logger="idp.web"):
        response = requests.get(f"{provider.url}/userinfo",
                                headers={"Authorization": "Bearer anything"})
    assert response.status_code == 500
    assert response.json() == {"error": "server_error"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "hunter2" not in response.text and "Traceback" not in response.text
    if isinstance(error, RuntimeError):
        # The trace is kept server-side.
        assert any(r.exc_info and r.exc_info[1] is error for r in caplog.records)


def test_service_unavailable_keeps_its_status(provider, monkeypatch):
    from werkzeug.exceptions import ServiceUnavailable

    def unavailable(*_args, **_kwargs):
        raise ServiceUnavailable()

    monkeypatch.setattr(resources, "userinfo", unavailable)
    response = requests.get(f"{provider.url}/userinfo",
                            headers={"Authorization": "Bearer anything"})
    assert response.status_code == 503
    assert response.json() == {"error": "temporarily_unavailable"}


def test_unexpected_error_on_a_page_is_the_themed_error_page(provider, monkeypatch):
    client = provider.create_client()
    monkeypatch.setattr(blueprint, "decide", _boom)
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": client.client_id, "scope": "openid",
        "redirect_uri": client.redirect_uri}, allow_redirects=False)
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert '<code class="error-code">server_error</code>' in response.text
    assert "An unexpected error occurred" in response.text
    assert "hunter2" not in response.text and "Traceback" not in response.text


def test_no_trace_even_when_flask_would_propagate_exceptions(provider, monkeypatch):
    """Debug mode (``flask run --debug``) and PROPAGATE_EXCEPTIONS hand an
    unhandled exception to the debugger or the WSGI server, which show it."""
    monkeypatch.setitem(provider.app.config, "PROPAGATE_EXCEPTIONS", True)
    monkeypatch.setattr(resources, "userinfo", _boom)
    with provider.app.test_client() as http:
        response = http.get("/userinfo", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 500 and response.json == {"error": "server_error"}


def test_issuer_that_authlib_would_refuse_stops_the_start(tmp_path):
    from idp import create_app

    settings = make_settings(tmp_path, None, 5000)
    settings["issuer"] = "http://id.example.test"
    with pytest.raises(ConfigError, match="setting issuer must be an https URL"):
        create_app(settings)


def test_a_host_that_is_no_host_name_is_explained_without_a_trace(provider, caplog):
    """A Host with an empty label gave three logged traces and a 500 (the
    error page's url_for had no URL adapter); it is a plain 400 page, in the
    reader's language, and JSON at the protocol endpoints."""
    bad_host = {"Host": "id..example.test"}
    with caplog.at_level(logging.ERROR):
        page = requests.get(f"{provider.url}/login",
                            headers={**bad_host, "Accept-Language": "zh-CN"})
        token = requests.post(f"{provider.url}/token", headers=bad_host,
                              data={"grant_type": "client_credentials"})
    assert page.status_code == 400
    assert "<p>此请求地址中的主机名无效。请检查地址后重试。</p>" in page.text
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_store_outage_is_503_temporarily_unavailable(provider, monkeypatch):
    """The store unreachable (revocation markers, sessions, codes cannot be
    read: every check fails closed) is an outage a client may wait out, not
    a fault: 503 ``temporarily_unavailable`` (found by the attack on issue
    9's changes, which saw 500), with no trace."""
    from idp.store import StoreError
    from tests.helpers import Browser, redeem

    username, password, _ = provider.create_account()
    client = provider.create_client()
    code = Browser(provider.url).login_for_code(client, username, password)["code"]
    tokens = redeem(provider.url, client, code).json()

    def down(*_args, **_kwargs):
        raise StoreError("store down: secret-detail")

    monkeypatch.setattr(provider.runtime.store, "get_many", down)
    answer = requests.get(f"{provider.url}/userinfo",
                          headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert answer.status_code == 503
    assert answer.json() == {"error": "temporarily_unavailable"}
    assert "secret-detail" not in answer.text

"""A department site using pyoidc (the ``oic`` package) 1.7, as its
documentation's "How to Implement a Client" (doc/examples/rp.rst) builds
one: ``Client(client_authn_method=CLIENT_AUTHN_METHOD)``, the provider's
metadata from discovery (``provider_config``), the client registered out of
band (``store_registration_info``), ``construct_AuthorizationRequest``,
``parse_response``, ``do_access_token_request`` with
``authn_method="client_secret_post"`` (the library checks the ID token's
signature with the provider's JWKS, and its nonce), ``do_user_info_request``;
then ``do_access_token_refresh`` and an end-session request
(``construct_EndSessionRequest``) the browser is sent to.

A plain WSGI app (the library brings no web framework) with sessions kept
in memory by a cookie; served on 127.0.0.1:$RP_PORT, it prints
``serving <url>`` once it accepts requests."""

import json
import logging
import os
import secrets
from http.cookies import SimpleCookie
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from oic import rndstr
from oic.oic import Client
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

logging.basicConfig(level=logging.INFO)
SITE = os.environ["RP_URL"]
SCOPE = ["openid", "profile", "email", "offline_access"]

client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
provider_info = client.provider_config(os.environ["ISSUER"])
client.store_registration_info(RegistrationResponse(
    client_id=os.environ["CLIENT_ID"], client_secret=os.environ["CLIENT_SECRET"],
    redirect_uris=[f"{SITE}/callback"], post_logout_redirect_uris=[f"{SITE}/logged-out"]))

SESSIONS: dict[str, dict] = {}


def _session(environ) -> tuple[str, dict]:
    cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    key = cookie["rp"].value if "rp" in cookie else ""
    if key not in SESSIONS:
        key = secrets.token_urlsafe(16)
        SESSIONS[key] = {}
    return key, SESSIONS[key]


def login(session, environ):
    """The authentication request, as the docs build it."""
    session["state"] = rndstr()
    session["nonce"] = rndstr()
    args = {
        "client_id": client.client_id,
        "response_type": "code",
        "scope": SCOPE,
        "nonce": session["nonce"],
        "redirect_uri": client.registration_response["redirect_uris"][0],
        "state": session["state"],
    }
    auth_req = client.construct_AuthorizationRequest(request_args=args)
    return "302 Found", auth_req.request(client.authorization_endpoint)


def callback(session, environ):
    """The authentication response, the token and UserInfo requests."""
    aresp = client.parse_response(AuthorizationResponse, info=environ["QUERY_STRING"],
                                  sformat="urlencoded")
    assert aresp["state"] == session["state"]
    resp = client.do_access_token_request(state=aresp["state"],
                                          request_args={"code": aresp["code"]},
                                          authn_method="client_secret_post")
    id_token = resp["id_token"]
    session["id_token"] = id_token.to_dict()
    session["id_token_alg"] = id_token.jws_header["alg"]
    session["access_token"] = resp["access_token"]
    session["refresh_token"] = resp["refresh_token"]
    session["userinfo"] = client.do_user_info_request(state=aresp["state"]).to_dict()
    return "302 Found", f"{SITE}/whoami"


def refresh(session, environ):
    """A refresh token grant, then UserInfo with the new access token."""
    resp = client.do_access_token_refresh(state=session["state"],
                                          authn_method="client_secret_post")
    session["refreshed"] = {
        "access_token": resp["access_token"], "refresh_token": resp["refresh_token"],
        "id_token": resp["id_token"].to_dict() if "id_token" in resp else None,
        "userinfo": client.do_user_info_request(state=session["state"]).to_dict(),
    }
    return "302 Found", f"{SITE}/whoami"


def logout(session, environ):
    """Send the browser to the provider's end_session endpoint with the ID
    token as hint; the local session ends here."""
    request = client.construct_EndSessionRequest(state=session["state"], request_args={
        "post_logout_redirect_uri": client.registration_response["post_logout_redirect_uris"][0],
        "state": rndstr()})
    session.clear()
    return "302 Found", request.request(client.end_session_endpoint)


def whoami(session, environ):
    return "200 OK", json.dumps({k: v for k, v in session.items() if k not in ("nonce",)})


def logged_out(session, environ):
    return "200 OK", "Logged out"


ROUTES = {"/login": login, "/callback": callback, "/refresh": refresh, "/logout": logout,
          "/whoami": whoami, "/logged-out": logged_out}


def application(environ, start_response):
    key, session = _session(environ)
    view = ROUTES.get(environ["PATH_INFO"])
    if view is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    status, body = view(session, environ)
    headers = [("Set-Cookie", f"rp={key}; Path=/; HttpOnly; SameSite=Lax")]
    if status.startswith("302"):
        headers.append(("Location", body))
        body = ""
    start_response(status, [*headers, ("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


server = make_server("127.0.0.1", int(os.environ["RP_PORT"]), application,
                     server_class=ThreadingWSGIServer)
print(f"serving {SITE}", flush=True)
server.serve_forever()

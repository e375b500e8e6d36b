"""A department site using flask-oidc 2.4, as its documentation configures it
(https://flask-oidc.readthedocs.io, "How to use" and "Settings reference"):
``OIDC_CLIENT_SECRETS`` with the client registered at the provider,
``OIDC_SCOPES``, ``OpenIDConnect(app)`` and ``@oidc.require_login``. The
library signs in through its own ``/login`` and ``/authorize`` views and
refreshes an expired access token before each request (Authlib's
``ensure_active_token``, with the refresh token that ``offline_access``
brings); its ``/logout`` forgets the tokens.

Signing out of the provider as well is the site's own view (the library has
none): it sends the browser to the provider's end_session endpoint, which
returns to the library's ``/logout`` (registered as the post-logout
redirect URI). Served on 127.0.0.1:$RP_PORT by werkzeug; prints
``serving <url>`` once it accepts requests."""

import logging
import os
from urllib.parse import urlencode

from flask import Flask, jsonify, session, url_for
from flask import redirect as flask_redirect
from flask_oidc import OpenIDConnect
from werkzeug.serving import make_server

logging.basicConfig(level=logging.INFO)
site = os.environ["RP_URL"]

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["RP_SECRET_KEY"],
    OIDC_CLIENT_SECRETS={"web": {
        "client_id": os.environ["CLIENT_ID"],
        "client_secret": os.environ["CLIENT_SECRET"],
        "issuer": os.environ["ISSUER"],
        "auth_uri": os.environ["AUTHORIZATION_ENDPOINT"],
        "token_uri": os.environ["TOKEN_ENDPOINT"],
        "userinfo_uri": os.environ["USERINFO_ENDPOINT"],
        "redirect_uris": [f"{site}/authorize"],
    }},
    # offline_access: a refresh token, so the library can renew the access token.
    OIDC_SCOPES="openid email profile offline_access",
)
oidc = OpenIDConnect(app)


@app.route("/")
def index():
    if oidc.user_loggedin:
        return f"Welcome {session['oidc_auth_profile'].get('email')}"
    return "Not logged in"


@app.route("/private")
@oidc.require_login
def private():
    """What the site knows of the user, for the test to check."""
    token = session["oidc_auth_token"]
    return jsonify(profile=session["oidc_auth_profile"], access_token=token["access_token"],
                   refresh_token=token.get("refresh_token"), id_token=token.get("id_token"),
                   expires_at=token.get("expires_at"))


@app.route("/signout")
def signout():
    """Sign out of the provider too (OpenID Connect RP-Initiated Logout 1.0
    §2), coming back to the library's /logout, which forgets the tokens."""
    token = session.get("oidc_auth_token") or {}
    query = {"post_logout_redirect_uri": url_for("oidc_auth.logout", _external=True),
             "client_id": os.environ["CLIENT_ID"]}
    if token.get("id_token"):
        query["id_token_hint"] = token["id_token"]
    return flask_redirect(f"{os.environ['END_SESSION_ENDPOINT']}?{urlencode(query)}")


server = make_server("127.0.0.1", int(os.environ["RP_PORT"]), app, threaded=True)
print(f"serving {site}", flush=True)
server.serve_forever()

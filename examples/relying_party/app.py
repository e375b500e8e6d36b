"""A department site: the reference OpenID Connect relying party.

Departments can copy this file to connect a Flask site to the provincial
identity provider. It uses the authorization code flow with PKCE, validates
the ID token (signature, issuer, audience, expiry, nonce) through Authlib,
reads the UserInfo endpoint once at login, and logs out through the
provider's end_session_endpoint (OpenID Connect RP-Initiated Logout 1.0).
When the user logs out anywhere else (another portal, the provider's
account console, an idle session), the provider POSTs a logout token to
``/backchannel-logout`` (OpenID Connect Back-Channel Logout 1.0): it is
validated as §2.6 says and the local session of its ``sid`` ends at that
session's next request.
A service that needs a verified identity asks for an assurance level with
``acr_values`` (the provider steps the user up to it, or answers
``unmet_authentication_requirements``) and for ``verified_claims``
(OpenID Connect for Identity Assurance 1.0) with the ``realname`` scope.
The ``acr`` of the ID token is then checked against the level asked for:
the request passes through the browser, where anyone can remove
``acr_values``, so a lower (or missing) ``acr`` is refused. A higher level
is accepted: the provider reports the level the login achieved, and a
higher level satisfies a lower one (it lists ``acr_values_supported``
lowest first; docs/assurance.md).

Register it with ES256 ID tokens, which Authlib accepts from discovery and
which sign faster than the RS256 default::

    idp clients create --name "Department of Civil Affairs" --alg ES256 \\
        --redirect-uri http://127.0.0.1:5001/callback \\
        --post-logout-redirect-uri http://127.0.0.1:5001/ \\
        --backchannel-logout-uri http://127.0.0.1:5001/backchannel-logout \\
        --backchannel-logout-session-required --json

Run standalone (from the project root)::

    RP_ISSUER=http://127.0.0.1:5000 RP_CLIENT_ID=... RP_CLIENT_SECRET=... \\
    RP_BASE_URL=http://127.0.0.1:5001 RP_TITLE="Department of Civil Affairs" \\
    RP_PORT=5001 python -m examples.relying_party.app
"""

from __future__ import annotations

import hmac
import json
import math
import os
import re
import secrets
import sys
import threading
import time
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from werkzeug.wrappers import Response

#: The claims parameter of a login at a required level: the verified name
#: in the ID token, with the verification and its evidence.
VERIFIED_CLAIMS_REQUEST = {"id_token": {"verified_claims": {
    "verification": {"trust_framework": None, "assurance_level": None, "time": None,
                     "evidence": None},
    "claims": {"name": None}}}}


#: Session key prefix of the level asked for by one login attempt (by its state).
ASKED_ACR = "_asked_acr_"


def meets_level(received: str | None, asked: str, levels: list[str]) -> bool:
    """Whether an ID token's ``acr`` satisfies the level the relying party asked for.

    :param received: the ``acr`` claim of the ID token, if any.
    :param asked: the ``acr_values`` the login asked for (one level).
    :param levels: the provider's ``acr_values_supported``, lowest first.
    :returns: True when ``received`` is ``asked`` or a higher level.
    """
    if received not in levels or asked not in levels:
        return False
    return levels.index(received) >= levels.index(asked)


#: The ``events`` member of a logout token (Back-Channel Logout 1.0 §2.4).
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Seconds a logout token's ``iat`` may lie in the past or future (clock skew).
LOGOUT_TOKEN_LEEWAY = 300


class LogoutTokenError(Exception):
    """A logout token failed a check of Back-Channel Logout 1.0 §2.6."""


class EndedSessions:
    """The provider sessions (``sid``) and subjects (``sub``, with the time
    of the logout) whose local sessions have ended, and the ``jti`` of the
    logout tokens already used, each remembered for ``keep`` seconds.

    This site keeps its sessions in signed cookies, which it cannot delete
    from the server: a logout token marks the provider session ended here,
    and the browser's cookie is cleared at its next request. Kept in this
    process: a site with several worker processes keeps it in a store they
    share (a database, Redis).
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._sids: dict[str, float] = {}
        self._subs: dict[str, float] = {}
        self._jtis: dict[str, float] = {}

    def _prune(self, now: float) -> None:
        for seen in (self._sids, self._subs, self._jtis):
            for key in [key for key, at in seen.items() if at + self._keep < now]:
                del seen[key]

    def record(self, jti: str, sid: str | None, sub: str | None) -> bool:
        """Note a logout; False when ``jti`` was used already (a replay)."""
        now = time.time()
        with self._lock:
            self._prune(now)
            if jti in self._jtis:
                return False
            self._jtis[jti] = now
            if sid is not None:
                self._sids[sid] = now
            elif sub is not None:
                self._subs[sub] = now
            return True

    def ended(self, sid: str | None, sub: str | None, logged_in_at: float) -> bool:
        """Whether a local session of provider session ``sid`` (subject
        ``sub``, started at ``logged_in_at``) was logged out."""
        with self._lock:
            if sid is not None and sid in self._sids:
                return True
            return sub is not None and self._subs.get(sub, 0) >= logged_in_at


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_logout_token(token: str, keys: KeySet, issuer: str, client_id: str, *,
                       session_required: bool) -> dict[str, Any]:
    """The claims of a valid logout token (Back-Channel Logout 1.0 §2.6):
    signed by one of the provider's ``keys`` with an asymmetric algorithm,
    typed ``logout+jwt`` when typed, for this client, from the issuer,
    current, with the back-channel logout event, a ``sub`` or ``sid``
    (``sid`` when the registration requires it) and no ``nonce``.

    :raises LogoutTokenError: a check failed (the message says which).
    """
    try:
        decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256", "PS256", "EdDSA"])
    except (JoseError, ValueError) as exc:
        raise LogoutTokenError(f"signature or format: {type(exc).__name__}") from None
    typ = decoded.header.get("typ")
    if typ is not None and typ.lower() not in ("logout+jwt", "application/logout+jwt"):
        raise LogoutTokenError("not a logout token (typ)")
    claims = decoded.claims
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    now = time.time()
    if claims.get("iss") != issuer:
        raise LogoutTokenError("wrong issuer")
    if client_id not in audiences:
        raise LogoutTokenError("not for this client")
    iat = claims.get("iat")
    if not _finite(iat) or abs(now - iat) > LOGOUT_TOKEN_LEEWAY:
        raise LogoutTokenError("issued at the wrong time")
    exp = claims.get("exp")
    if not _finite(exp) or exp < now - 30 or exp > iat + 86400:
        raise LogoutTokenError("expired, or no sensible exp")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT),
                                                      dict):
        raise LogoutTokenError("no back-channel logout event")
    if "nonce" in claims:
        raise LogoutTokenError("a nonce is not allowed")
    if not isinstance(claims.get("jti"), str):
        raise LogoutTokenError("no jti")
    if not isinstance(claims.get("sub"), str) and not isinstance(claims.get("sid"), str):
        raise LogoutTokenError("neither sub nor sid")
    if session_required and not isinstance(claims.get("sid"), str):
        raise LogoutTokenError("no sid")
    return claims


def default_cookie_name(client_id: str) -> str:
    """``rp_<client_id>_session`` with unsafe characters replaced.

    Browsers do not separate cookies by port, and the provider and every
    relying party of the demo live on 127.0.0.1: each needs its own cookie
    name or they would overwrite each other's sessions.
    """
    return "rp_" + re.sub(r"[^A-Za-z0-9]+", "_", client_id).strip("_") + "_session"


def create_relying_party(
    issuer: str,
    client_id: str,
    client_secret: str,
    base_url: str,
    title: str,
    cookie_name: str | None = None,
    secret_key: str | None = None,
    session_required: bool = True,
) -> Flask:
    """Build a relying party application.

    :param issuer: the provider's issuer URL (discovery is read from it).
    :param client_id: the relying party's registered client id.
    :param client_secret: its secret (``client_secret_basic`` at the token endpoint).
    :param base_url: where this relying party is reachable, without trailing slash;
        ``<base_url>/callback`` and ``<base_url>/`` must be registered as the
        redirect URI and post-logout redirect URI.
    :param title: the department's name shown on the pages.
    :param cookie_name: session cookie name (default: derived from ``client_id``).
    :param secret_key: key signing the session cookie (default: random per
        process, which logs everyone out on restart and cannot be shared by
        several worker processes: configure a fixed one in production).
    :param session_required: the client is registered with
        ``--backchannel-logout-session-required`` (logout tokens name a ``sid``).
    :returns: the Flask application.
    """
    base_url = base_url.rstrip("/")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_hex(32),
        SESSION_COOKIE_NAME=cookie_name or default_cookie_name(client_id),
        SESSION_COOKIE_HTTPONLY=True,
        # Lax still sends the cookie on the provider's top-level redirect back
        # to /callback, but not on cross-site POSTs, which protects /logout.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=base_url.startswith("https://"),
    )
    oauth = OAuth(app)
    idp = oauth.register(
        name="idp",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email realname",
                       "code_challenge_method": "S256"},
    )
    # Built from the configured base URL rather than url_for(_external=True):
    # behind a reverse proxy the request's host may differ, and the provider
    # compares redirect URIs as exact strings.
    redirect_uri = base_url + "/callback"
    post_logout_uri = base_url + "/"
    issuer = issuer.rstrip("/")
    # Remembered a little longer than a session cookie lives.
    ended = EndedSessions(keep=86400)

    @app.before_request
    def _ended_elsewhere() -> None:
        """A session logged out at the provider (a logout token) ends here
        at its next request."""
        user = session.get("user")
        if user and ended.ended(user["id_token"].get("sid"), user["id_token"].get("sub"),
                                session.get("logged_in_at", 0)):
            session.clear()

    def _error(message: str) -> str:
        return render_template("error.html", message=message)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"title": title, "user": session.get("user"), "csrf": session.get("csrf")}

    @app.get("/")
    def home() -> str:
        """Landing page; also the post-logout redirect target."""
        message = None
        if request.args.get("state"):
            # Returning from the provider's logout: only trust the message if
            # the state is the one this browser sent (RP-Initiated Logout §3).
            try:
                idp.validate_logout_response()
                message = "You have logged out of the provincial account."
            except AuthlibBaseError:
                pass
        return render_template("home.html", message=message)

    @app.get("/login")
    def login() -> Response:
        """Send the browser to the provider (state, nonce and PKCE are kept
        in this relying party's session by Authlib). ``?level=<acr>`` asks
        for an assurance level the provider lists in ``acr_values_supported``,
        and for the verified name with the evidence behind it."""
        # Authlib keeps one entry per login attempt; abandoned attempts would
        # grow the cookie past the browser's 4 KB limit.
        for key in [k for k in session if k.startswith(("_state_idp_", ASKED_ACR))]:
            session.pop(key)
        level = request.args.get("level")
        if level and level in idp.load_server_metadata().get("acr_values_supported", []):
            started = idp.create_authorization_url(
                redirect_uri, acr_values=level, claims=json.dumps(VERIFIED_CLAIMS_REQUEST))
            idp.save_authorize_data(redirect_uri=redirect_uri, **started)
            session[ASKED_ACR + started["state"]] = level
            return redirect(started["url"])
        return idp.authorize_redirect(redirect_uri)

    @app.get("/callback")
    def callback() -> Response | tuple[str, int]:
        """Finish the login: exchange the code, validate the ID token and the
        level it proves, read UserInfo."""
        asked = session.pop(ASKED_ACR + request.args.get("state", ""), None)
        try:
            token = idp.authorize_access_token()
            if "userinfo" not in token:
                # Authlib validates the ID token only when one is returned.
                return _error("The provider returned no ID token."), 400
            userinfo = idp.userinfo(token=token)
        except (AuthlibBaseError, JoseError, requests.HTTPError) as exc:
            # Only the error code: error_description comes from the query
            # string, i.e. from whoever wrote the link.
            code = getattr(exc, "error", None) or type(exc).__name__
            app.logger.info("login failed: %s", exc)
            if code == "unmet_authentication_requirements":
                return _error("This service needs a higher assurance level than your "
                              "account could reach. Verify your identity in your "
                              "provincial account, or visit a service counter."), 403
            return _error(f"Login failed ({code}). Please try again."), 400
        if userinfo.get("sub") != token["userinfo"].get("sub"):
            # OIDC Core §5.3.2: UserInfo must be about the ID token's subject.
            return _error("Login failed (subject mismatch). Please try again."), 400
        received = token["userinfo"].get("acr")
        levels = idp.load_server_metadata().get("acr_values_supported", [])
        if asked is not None and not meets_level(received, asked, levels):
            app.logger.warning("login refused: acr %r below the %r asked for", received, asked)
            proved = received if received in levels else "no assurance level"
            return _error(f"This service needs identity assurance level {asked}, but the "
                          f"login proved {proved}. Log in again from this service to "
                          f"verify your identity further."), 403
        # A fresh session at login: drops leftovers of abandoned login attempts
        # and anything set before the user was authenticated.
        session.clear()
        session["user"] = {"id_token": dict(token["userinfo"]), "userinfo": dict(userinfo)}
        # Kept for id_token_hint at logout. The access token is not kept: this
        # relying party needs nothing more from the provider after login.
        session["id_token"] = token["id_token"]
        session["csrf"] = secrets.token_urlsafe(24)
        session["logged_in_at"] = time.time()
        return redirect(url_for("home"))

    refetched = [0.0]

    def _provider_keys(token: str) -> KeySet:
        """The provider's signing keys (from discovery's ``jwks_uri``,
        cached); read again for a ``kid`` not among them (the provider
        rotated its keys), at most once a minute whatever tokens arrive."""
        keys = KeySet.import_key_set(idp.fetch_jwk_set())
        try:
            kid = extract_compact(token.encode()).headers().get("kid")
        except (JoseError, ValueError):
            return keys
        if (kid is not None and all(key.kid != kid for key in keys.keys)
                and time.time() - refetched[0] > 60):
            refetched[0] = time.time()
            keys = KeySet.import_key_set(idp.fetch_jwk_set(force=True))
        return keys

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Response | tuple[Response, int]:
        """OpenID Connect Back-Channel Logout 1.0 §2.5: the provider says a
        session ended. Answers 200 (with ``Cache-Control: no-store``) when
        the token is valid, else 400 with an error (§2.8)."""
        token = request.form.get("logout_token", "")
        try:
            claims = check_logout_token(token, _provider_keys(token), issuer, client_id,
                                        session_required=session_required)
            if not ended.record(claims["jti"], claims.get("sid"), claims.get("sub")):
                raise LogoutTokenError("replayed (jti seen before)")
        except LogoutTokenError as exc:
            app.logger.info("logout token refused: %s", exc)
            answer = jsonify(error="invalid_request", error_description=str(exc))
            answer.headers["Cache-Control"] = "no-store"
            return answer, 400
        answer = Response(status=200)
        answer.headers["Cache-Control"] = "no-store"
        return answer

    @app.post("/logout")
    def logout() -> Response:
        """End the local session, then the provider's SSO session.

        POST only, with this session's CSRF token: SameSite=Lax does not stop
        a POST from a sibling site (another port or subdomain).
        """
        expected = session.get("csrf")
        if expected and not hmac.compare_digest(request.form.get("csrf", ""), expected):
            return redirect(url_for("home"))
        id_token = session.get("id_token")
        session.clear()
        if not id_token:
            return redirect(url_for("home"))
        # Authlib adds a random state and remembers it in the (now empty) session.
        return idp.logout_redirect(post_logout_redirect_uri=post_logout_uri,
                                   id_token_hint=id_token)

    @app.errorhandler(requests.RequestException)
    def _provider_unreachable(exc: requests.RequestException) -> tuple[str, int]:
        app.logger.warning("identity provider unreachable: %s", exc)
        return _error("The identity provider cannot be reached. Try again later."), 502

    return app


def main() -> None:
    """Run a relying party from ``RP_*`` environment variables on 127.0.0.1."""
    from werkzeug.serving import make_server

    names = ("RP_ISSUER", "RP_CLIENT_ID", "RP_CLIENT_SECRET", "RP_BASE_URL", "RP_TITLE",
             "RP_PORT")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        sys.exit(f"relying party: set {', '.join(missing)}")
    env = os.environ
    app = create_relying_party(env["RP_ISSUER"], env["RP_CLIENT_ID"], env["RP_CLIENT_SECRET"],
                               env["RP_BASE_URL"], env["RP_TITLE"],
                               env.get("RP_COOKIE_NAME") or None,
                               env.get("RP_SECRET_KEY") or None)
    # A threaded Werkzeug server: enough for a demo; put a real WSGI server
    # (gunicorn with one shared secret key) in front of a production relying party.
    server = make_server("127.0.0.1", int(env["RP_PORT"]), app, threaded=True)
    print(f"{env['RP_TITLE']}: {env['RP_BASE_URL']}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

"""Request-level helpers shared by blueprints: the browser id, the SSO
cookie, the client IP, and security headers. Only views use this module."""

from __future__ import annotations

from flask import Response, request, session

from idp.accounts.models import Account
from idp.accounts.service import get_account
from idp.authn.sessions import SsoSession, load_session
from idp.runtime import Runtime
from idp.security import random_token


def browser_id() -> str:
    """A random id for this browser kept in the signed Flask session cookie;
    interactions are bound to it so a leaked interaction URL is useless elsewhere."""
    if "bid" not in session:
        session["bid"] = random_token(16)
    return session["bid"]


def client_ip() -> str | None:
    """The client's IP address as the WSGI server saw it (a trusted proxy
    must be configured with ProxyFix to see the real one)."""
    return request.remote_addr


def sso_cookie(rt: Runtime) -> str | None:
    """The browser's SSO session cookie value, if it sent one."""
    return request.cookies.get(rt.settings["session"]["cookie_name"])


def current_sso(rt: Runtime) -> tuple[SsoSession | None, Account | None]:
    """The browser's live SSO session and its account (None if inactive)."""
    sso = load_session(rt.store, sso_cookie(rt))
    if sso is None:
        return None, None
    account = get_account(sso.account_id)
    if account is None or not account.is_active:
        return sso, None
    return sso, account


def set_sso_cookie(rt: Runtime, response: Response, sso: SsoSession) -> None:
    """Attach the SSO session cookie (HttpOnly, SameSite=Lax, Secure in production)."""
    settings = rt.settings["session"]
    response.set_cookie(
        settings["cookie_name"], sso.handle, max_age=rt.settings["session"]["sso_ttl"],
        httponly=True, samesite="Lax", secure=settings["cookie_secure"], path="/",
    )


def clear_sso_cookie(rt: Runtime, response: Response) -> None:
    """Remove the SSO session cookie."""
    settings = rt.settings["session"]
    response.delete_cookie(settings["cookie_name"], path="/", httponly=True, samesite="Lax",
                           secure=settings["cookie_secure"])


def add_security_headers(response: Response) -> Response:
    """Forbid framing (clickjacking of login and consent pages) and sniffing."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy",
                                "frame-ancestors 'none'; form-action *; default-src 'self'; "
                                "script-src 'self' 'unsafe-inline'; style-src 'self'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response

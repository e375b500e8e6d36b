"""Login rules: password authentication with throttling, registration limits,
and starting the SSO session with its audit event."""

from __future__ import annotations

from idp.accounts import service as accounts
from idp.accounts.models import Account
from idp.audit.service import record
from idp.authn import throttle
from idp.authn.sessions import SsoSession, create_session, end_session
from idp.extensions import db
from idp.runtime import Runtime

#: OIDC Core §2: "0" means the authentication does not meet ISO/IEC 29115
#: level 1 -- true of a password login to an account whose identity has not
#: been verified against a registry.
ACR_UNVERIFIED = "0"


class LoginFailedError(Exception):
    """Wrong identifier or password, or an account that may not log in. One
    error for all cases, so the answer never reveals whether an account exists."""


class RegistrationLimitError(Exception):
    """Too many registrations from one client IP address in the window."""


def start_session(rt: Runtime, account: Account, amr: list[str], ip: str | None,
                  previous: str | None = None, **detail: str) -> SsoSession:
    """Open an SSO session for ``account``, audit ``login.success`` and commit.

    :param amr: RFC 8176 methods used, e.g. ``["pwd"]``.
    :param previous: the browser's current session cookie, if any; that
        session ends, so a new login never leaves an older one alive.
    """
    if previous:
        end_session(rt.store, previous)
    sso = create_session(rt.store, account.id, amr, ACR_UNVERIFIED,
                         rt.settings["session"]["sso_ttl"])
    record("login.success", account_id=account.id, ip=ip, sid=sso.sid, amr=amr, **detail)
    db.session.commit()
    return sso


def login_with_password(rt: Runtime, identifier: str, password: str,
                        ip: str | None, previous: str | None = None) -> SsoSession:
    """Authenticate by password and start an SSO session.

    Failures count against the typed identifier and the IP (store counters),
    and are audited.

    :raises throttle.ThrottledError: the identifier or IP is over its limit.
    :raises LoginFailedError: on any other failure.
    """
    identifier = accounts.normalize_username(identifier)
    limits = rt.settings["throttle"]
    try:
        throttle.reserve_attempt(rt.store, limits, identifier, ip)
    except throttle.ThrottledError:
        record("login.failure", "failure", ip=ip, reason="throttled")
        db.session.commit()
        raise
    account, ok = accounts.check_password(rt, identifier, password)
    if not ok or not account.is_active:
        record("login.failure", "failure", account_id=account.id if account else None, ip=ip,
               reason="invalid_credentials" if not ok else "inactive")
        db.session.commit()
        raise LoginFailedError(identifier)
    throttle.note_success(rt.store, limits, identifier, ip)
    return start_session(rt, account, ["pwd"], ip, previous)


def register(rt: Runtime, username: str, password: str, *, name: str | None,
             email: str | None, ip: str | None, previous: str | None = None) -> SsoSession:
    """Create an account (at most ``registrations_per_ip`` per window per IP)
    and log it in.

    :raises RegistrationLimitError: over the per-IP limit.
    :raises accounts.AccountError: invalid or taken username, weak password.
    """
    limits = rt.settings["throttle"]
    if rt.store.incr(f"rl:register:ip:{ip}", limits["registration_window"]) > \
            limits["registrations_per_ip"]:
        raise RegistrationLimitError(ip)
    account = accounts.create_account(rt, username, password, name=name, email=email, ip=ip)
    return start_session(rt, account, ["pwd"], ip, previous, via="registration")


def logout(rt: Runtime, sso: SsoSession, client_id: str | None, ip: str | None) -> None:
    """End the SSO session ``sso`` for every client and audit ``logout``."""
    end_session(rt.store, sso.handle)
    record("logout", account_id=sso.account_id, client_id=client_id, ip=ip, sid=sso.sid)
    db.session.commit()

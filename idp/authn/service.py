"""Login rules: password authentication with throttling, registration limits,
and starting the SSO session with its audit event."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from connectors.registries import RegistryUnavailableError
from connectors.sms import SmsGatewayError
from idp.accounts import service as accounts
from idp.accounts.models import Account
from idp.accounts.notify import notify_phone
from idp.audit.service import record, record_deferred
from idp.authn import otp, throttle, totp
from idp.authn.acr import combine_amr
from idp.authn.sessions import SsoSession, create_session, end_session
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token


class LoginFailedError(Exception):
    """Wrong identifier or password, or an account that may not log in. One
    error for all cases, so the answer never reveals whether an account exists."""


class RegistrationLimitError(Exception):
    """Too many registrations from one client IP address in the window."""


def start_session(rt: Runtime, account: Account, amr: list[str], ip: str | None,
                  previous: str | None = None, ttl: int | None = None, *,
                  public: bool = False, **detail: str) -> SsoSession:
    """Open an SSO session for ``account``, audit ``login.success`` and commit.

    :param amr: RFC 8176 methods used, e.g. ``["pwd"]``.
    :param previous: the browser's current session cookie, if any; that
        session ends, so a new login never leaves an older one alive.
    :param ttl: lifetime in seconds (default ``session.sso_ttl``).
    :param public: the user said the computer is a public one (or it is a
        kiosk): the session also ends after ``session.public_idle_ttl``
        seconds unused, and its cookie with the browser.
    """
    if previous:
        end_session(rt.store, previous)
    settings = rt.settings["session"]
    sso = create_session(rt.store, account.id, amr, ttl or settings["sso_ttl"],
                         account.session_generation,
                         idle_ttl=settings["public_idle_ttl"] if public else 0)
    public_detail = {"public_computer": True} if public else {}
    record("login.success", account_id=account.id, ip=ip, sid=sso.sid, amr=amr,
           **public_detail, **detail)
    db.session.commit()
    return sso


@dataclass(frozen=True)
class PendingLogin:
    """The first factor is proven, and a TOTP code must follow before the
    SSO session starts (:func:`finish_second_factor`).

    :ivar token: the secret the browser keeps (in its signed session cookie).
    :ivar enrol: the account has no authenticator yet (an operator, who must
        have one): it is set up first.
    """

    token: str
    enrol: bool


_PENDING = "mfa:pending:"


def _pending_key(token: str) -> str:
    return _PENDING + hashlib.sha256(token.encode()).hexdigest()


def complete_login(rt: Runtime, account: Account, amr: list[str], ip: str | None,
                   previous: str | None = None, ttl: int | None = None, *,
                   public: bool = False, **detail: str) -> SsoSession | PendingLogin:
    """After a first factor: start the SSO session (lasting ``ttl`` seconds,
    default ``session.sso_ttl``; a ``public`` computer's session as in
    :func:`start_session`), or, when the account needs a second factor
    (TOTP set up, or an operator), a pending login that
    :func:`finish_second_factor` completes within ``totp.pending_login_ttl``
    (the pending login keeps ``ttl`` and ``public`` for the session it opens)."""
    if not totp.needs_second_factor(account):
        return start_session(rt, account, amr, ip, previous, ttl, public=public, **detail)
    token = random_token(24)
    rt.store.put(_pending_key(token), {"account_id": account.id, "amr": amr, "detail": detail,
                                       "ttl": ttl, "public": public},
                 rt.settings["totp"]["pending_login_ttl"])
    return PendingLogin(token=token, enrol=not totp.has_totp(account))


def pending_account(rt: Runtime, token: str | None) -> Account | None:
    """The account of a live pending login, or None."""
    if not token or len(token) > 64:
        return None
    data = rt.store.get(_pending_key(token))
    account = accounts.get_account(data["account_id"]) if data else None
    return account if account is not None and account.is_active else None


def finish_second_factor(rt: Runtime, token: str, code: str, *, recovery: bool,
                         ip: str | None, previous: str | None = None) -> SsoSession:
    """Complete a pending login with a TOTP code (or a recovery code): the
    session's ``amr`` gains ``otp`` and ``mfa``.

    :raises LoginFailedError: no such pending login, or a wrong code (the
        pending login stays, so the user can try again within the limits).
    :raises throttle.ThrottledError: too many wrong codes.
    """
    account = pending_account(rt, token)
    if account is None:
        raise LoginFailedError("no pending login")
    ok = (totp.use_recovery_code(rt, account, code, ip) if recovery
          else totp.verify_totp(rt, account, code, ip))
    if not ok:
        record("login.failure", "failure", account_id=account.id, ip=ip,
               reason="recovery_code" if recovery else "totp_code")
        db.session.commit()
        raise LoginFailedError(account.username)
    return _start_pending(rt, token, account, ip, previous)


def _start_pending(rt: Runtime, token: str, account: Account, ip: str | None,
                   previous: str | None) -> SsoSession:
    data = rt.store.take(_pending_key(token))
    if data is None:
        raise LoginFailedError(account.username)
    return start_session(rt, account, combine_amr(data["amr"], "otp"), ip, previous,
                         data.get("ttl"), public=data.get("public", False), **data["detail"])


def enrol_and_finish(rt: Runtime, token: str, code: str, ip: str | None,
                     previous: str | None = None) -> tuple[SsoSession, list[str]]:
    """Complete a pending login of an account without an authenticator by
    confirming the one just set up (:func:`totp.start_enrolment`).

    :returns: the session and the new recovery codes (to show once).
    :raises LoginFailedError: no such pending login, or a wrong code.
    :raises totp.TotpError: no enrolment started.
    :raises throttle.ThrottledError: too many wrong codes.
    """
    account = pending_account(rt, token)
    if account is None:
        raise LoginFailedError("no pending login")
    try:
        codes = totp.confirm_enrolment(rt, account, code, ip)
    except ValueError:
        raise LoginFailedError(account.username) from None
    return _start_pending(rt, token, account, ip, previous), codes


def login_with_password(rt: Runtime, identifier: str, password: str, ip: str | None,
                        previous: str | None = None, *,
                        public: bool = False) -> SsoSession | PendingLogin:
    """Authenticate by password and start an SSO session (or a pending
    login, when a second factor must follow: :func:`complete_login`; a
    ``public`` computer's session as in :func:`start_session`).

    Failures count against the IP and against the account the identifier
    names, whichever identifier and spelling named it (username, ID or card
    number, phone in any format), so reformatting an identifier gives no
    extra guesses; an identifier that names no account is counted by its
    keyed hash, so the store holds no typed identifier. Failures are audited.

    :raises throttle.ThrottledError: the account or IP is over its limit.
    :raises LoginFailedError: on any other failure.
    """
    identifier = accounts.normalize_username(identifier)
    limits = rt.settings["throttle"]
    account = accounts.find_for_login(rt, identifier)
    key = (f"account:{account.id}" if account is not None
           else "unknown:" + keyed_hash(rt.token_hmac_key, identifier, "login_identifier"))
    try:
        throttle.reserve_attempt(rt.store, limits, key, ip)
    except throttle.ThrottledError:
        record("login.failure", "failure", account_id=account.id if account else None, ip=ip,
               reason="throttled")
        db.session.commit()
        raise
    ok = accounts.verify_password(rt, account, password)
    if not ok or not account.is_active:
        record("login.failure", "failure", account_id=account.id if account else None, ip=ip,
               reason="invalid_credentials" if not ok else "inactive")
        db.session.commit()
        raise LoginFailedError(identifier)
    throttle.note_success(rt.store, limits, key, ip)
    return complete_login(rt, account, ["pwd"], ip, previous, public=public)


def register(rt: Runtime, username: str, password: str, *, name: str | None,
             email: str | None, ip: str | None, previous: str | None = None) -> SsoSession:
    """Create an account (at most ``registrations_per_ip`` per window per IP)
    and log it in.

    :raises RegistrationLimitError: over the per-IP limit.
    :raises accounts.AccountError: invalid or taken username, weak password.
    """
    _count_registration(rt, ip)
    account = accounts.create_account(rt, username, password, name=name, email=email, ip=ip)
    return start_session(rt, account, ["pwd"], ip, previous, via="registration")


def _count_registration(rt: Runtime, ip: str | None) -> None:
    limits = rt.settings["throttle"]
    if rt.store.incr(f"rl:register:ip:{ip}", limits["registration_window"]) > \
            limits["registrations_per_ip"]:
        raise RegistrationLimitError(ip)


class InvalidCodeError(Exception):
    """The SMS code is wrong, expired or used up."""


def register_with_phone(rt: Runtime, phone: str, code: str, username: str, password: str,
                        *, name: str | None, ip: str | None,
                        previous: str | None = None) -> SsoSession:
    """Create an account whose mobile number is proven by the code sent with
    :func:`send_sms_code` (purpose ``register``), and sign it in.

    The form is checked before the code is used, so a typing error in the
    username does not cost the user their code; whether the number already
    has an account is said only after the code proved the number, so the
    form cannot be used to find out which numbers have accounts.

    :raises RegistrationLimitError: over the per-IP limit.
    :raises accounts.AccountError: invalid or taken username, weak password,
        or a number that already belongs to an account.
    :raises InvalidCodeError: wrong, expired or used-up code.
    """
    _count_registration(rt, ip)
    accounts.validate_new_account(rt, username, password, None)
    e164 = otp.check_code(rt, phone, "register", code)
    if e164 is None:
        raise InvalidCodeError(phone)
    if accounts.find_by_phone(rt, e164) is not None:
        raise accounts.AccountError("phone", _l("This number belongs to another account."))
    account = accounts.create_account(rt, username, password, name=name, verified_phone=e164,
                                      ip=ip)
    return start_session(rt, account, ["sms"], ip, previous, via="phone_registration")


def logout(rt: Runtime, sso: SsoSession, client_id: str | None, ip: str | None) -> None:
    """End the SSO session ``sso`` for every client and audit ``logout``."""
    end_session(rt.store, sso.handle)
    record("logout", account_id=sso.account_id, client_id=client_id, ip=ip, sid=sso.sid)
    db.session.commit()


class SmsUnavailableError(Exception):
    """No SMS gateway is configured, or it did not take the message."""


def send_sms_code(rt: Runtime, phone: str, purpose: str, ip: str | None) -> otp.SentCode:
    """Send a code by SMS for ``purpose`` (``login``, ``register``). The
    answer is the same whether or not an account holds the number: the code
    is sent either way.

    :raises IdentifierError: not a valid mobile number.
    :raises otp.OtpThrottledError: a send limit is reached.
    :raises SmsUnavailableError: no gateway, or the gateway failed.
    """
    if rt.gateway is None:
        raise SmsUnavailableError("no SMS gateway is configured")
    try:
        sent = otp.send_code(rt, rt.gateway, phone, purpose, ip)
    except (SmsGatewayError, RegistryUnavailableError) as exc:
        raise SmsUnavailableError(str(exc)) from None
    record_deferred(rt.audit, "sms.sent", ip=ip, purpose=purpose, message_id=sent.message_id)
    return sent


def login_with_sms(rt: Runtime, phone: str, code: str, ip: str | None,
                   previous: str | None = None, *,
                   public: bool = False) -> SsoSession | PendingLogin:
    """Sign in with a code sent by :func:`send_sms_code` (``amr`` ``sms``);
    a second factor may follow (:func:`complete_login`; a ``public``
    computer's session as in :func:`start_session`).

    :raises LoginFailedError: wrong, expired or used-up code, or no active
        account with this verified number.
    """
    e164 = otp.check_code(rt, phone, "login", code)
    account = accounts.find_by_phone(rt, e164) if e164 else None
    if account is None or not account.phone_number_verified or not account.is_active:
        record("login.failure", "failure", account_id=account.id if account else None, ip=ip,
               reason="sms_code" if e164 is None else "no_account", amr=["sms"])
        db.session.commit()
        raise LoginFailedError(phone)
    return complete_login(rt, account, ["sms"], ip, previous, public=public)


def confirm_phone(rt: Runtime, account: Account, phone: str, code: str, password: str,
                  ip: str | None, totp_code: str | None = None) -> bool:
    """Store ``phone`` as the account's confirmed mobile number, proven by the
    code sent with :func:`send_sms_code` (purpose ``verify_phone``) and the
    account's password: a session alone (a kiosk card read, a browser left
    signed in) must not change the number password resets go to. Commits.

    Replacing a confirmed number changes the channel of password resets
    and SMS second factors, so: the carrier check (about the old number)
    stops counting; unless a current TOTP code also confirms the change,
    all verification evidence stops counting (level 1), as a password alone
    proves nothing more; every SSO session ends; the old number is told.

    :returns: True when a confirmed number was replaced (the user must sign
        in again).
    :raises LoginFailedError: wrong password.
    :raises throttle.ThrottledError: too many wrong passwords or TOTP codes.
    :raises InvalidCodeError: wrong, expired or used-up code.
    :raises accounts.AccountError: the number belongs to another account.
    """
    from idp.accounts.verification import revoke_evidence

    confirm_password(rt, account, password, ip)
    e164 = otp.check_code(rt, phone, "verify_phone", code)
    if e164 is None:
        raise InvalidCodeError(phone)
    old = accounts.phone_number(rt, account) if account.phone_number_verified else None
    accounts.set_phone_number(rt, account, e164, verified=True)
    if old is None or old == e164:
        record("account.phone_verified", account_id=account.id, ip=ip)
        db.session.commit()
        return False
    proven = bool(totp_code) and totp.verify_totp(rt, account, totp_code or "", ip)
    revoked = revoke_evidence(account, "phone_changed",
                              None if not proven else ("carrier_three_element",))
    account.end_all_sessions()
    record("account.phone_changed", account_id=account.id, ip=ip, totp=proven,
           evidence_revoked=revoked)
    db.session.commit()
    # The previous number learns that it no longer signs in.
    notify_phone(rt, old, "phone_changed")
    return True


def confirm_password(rt: Runtime, account: Account, password: str, ip: str | None) -> None:
    """Check the password of the signed-in ``account`` (a step-up factor),
    throttled like a login.

    :raises throttle.ThrottledError: too many failures.
    :raises LoginFailedError: wrong password or no password set.
    """
    limits = rt.settings["throttle"]
    key = f"account:{account.id}"
    throttle.reserve_attempt(rt.store, limits, key, ip)
    if not accounts.verify_password(rt, account, password):
        record("login.failure", "failure", account_id=account.id, ip=ip,
               reason="invalid_credentials", step_up=True)
        db.session.commit()
        raise LoginFailedError(account.username)
    throttle.note_success(rt.store, limits, key, ip)


def send_step_up_code(rt: Runtime, account: Account, ip: str | None) -> otp.SentCode:
    """Send a step-up code to the account's verified mobile number.

    :raises SmsUnavailableError: no gateway, or the gateway failed.
    :raises otp.OtpThrottledError: a send limit is reached.
    :raises LoginFailedError: the account has no verified number.
    """
    phone = accounts.phone_number(rt, account)
    if not phone or not account.phone_number_verified:
        raise LoginFailedError(account.username)
    return send_sms_code(rt, phone, "step_up", ip)


def check_step_up_code(rt: Runtime, account: Account, code: str, ip: str | None) -> None:
    """Check a step-up code sent by :func:`send_step_up_code`.

    :raises InvalidCodeError: wrong, expired or used-up code.
    """
    phone = accounts.phone_number(rt, account)
    if not phone or otp.check_code(rt, phone, "step_up", code) is None:
        record("login.failure", "failure", account_id=account.id, ip=ip, reason="sms_code",
               step_up=True)
        db.session.commit()
        raise InvalidCodeError(phone or "")


def reset_password_by_sms(rt: Runtime, phone: str, code: str, password: str,
                          ip: str | None) -> Account:
    """Set a new password for the account holding the verified number
    ``phone``, proven by a code sent for ``reset_password``. Commits.

    An SMS code alone proves only the phone, so the identity verification
    stops counting (the account drops to level 1 until it verifies again),
    every SSO session ends and every grant is revoked.

    :raises accounts.AccountError: the new password breaks the policy (the
        code is not used up then).
    :raises InvalidCodeError: wrong, expired or used-up code, or no active
        account with this verified number (one answer for both).
    """
    from idp.accounts.verification import revoke_evidence
    from idp.oidc.grants import revoke_account_grants

    accounts.check_password_policy(rt, password)
    e164 = otp.check_code(rt, phone, "reset_password", code)
    account = accounts.find_by_phone(rt, e164) if e164 else None
    if account is None or not account.phone_number_verified or not account.is_active:
        record("password.reset", "failure", account_id=account.id if account else None,
               ip=ip, reason="sms_code" if e164 is None else "no_account")
        db.session.commit()
        raise InvalidCodeError(phone)
    account.password_hash = rt.hasher.hash(password)
    revoked = revoke_evidence(account, "password_reset_by_sms")
    account.end_all_sessions()
    record("password.reset", account_id=account.id, ip=ip, evidence_revoked=revoked)
    db.session.commit()
    revoke_account_grants(rt, account.id, "password_reset", ip)
    return account

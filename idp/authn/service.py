"""Login rules: password authentication with throttling, registration limits,
and starting the SSO session with its audit event; re-authentication of a
session before it changes how the account signs in (authenticator,
recovery codes, password), and password reset and change."""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from flask import has_request_context, request
from flask_babel import lazy_gettext as _l

from connectors.registries import RegistryUnavailableError
from connectors.sms import SmsGatewayError
from idp import sessions, sms_budget
from idp.accounts import service as accounts
from idp.accounts.legacy import forget_legacy_credentials
from idp.accounts.models import Account
from idp.accounts.notify import notify_after_commit, notify_phone
from idp.accounts.recovery import sms_reset_hold_until
from idp.audit.service import record, record_deferred
from idp.authn import otp, throttle, totp
from idp.oidc.acr import combine_amr
from idp.runtime import Runtime
from idp.security import constant_time_equals, keyed_hash, random_token
from idp.sessions import SsoSession, create_session, load_session
from idp.sms_budget import SmsBudgetExhaustedError
from idp.timeutil import epoch, utcnow
from idp.unit_of_work import after_commit

log = logging.getLogger(__name__)


class LoginFailedError(Exception):
    """Wrong identifier or password, or an account that may not log in. One
    error for all cases, so the answer never reveals whether an account exists."""


class RegistrationLimitError(Exception):
    """Too many registrations from one client IP address in the window."""


def _known(device: throttle.DeviceCookie | None, account: Account | None) -> str | None:
    """The nonce of the browser's device cookie for ``account`` (its own
    throttle counters for guesses at the account's password, authenticator
    and recovery codes), or None for a browser unknown to the account or
    known to it by an SMS code only: whoever holds the phone gets no
    guesses at the account's secrets of their own."""
    if device is None or account is None:
        return None
    return device.nonce_for(account.id, account.session_generation)


def _known_phone(device: throttle.DeviceCookie | None, account: Account | None) -> str | None:
    """The nonce of the browser's device cookie for ``account`` for codes
    sent to the account's own verified number (its own code, waits and
    counts, :mod:`idp.authn.otp`), or None for a browser unknown to it.
    Any login there counts, an SMS sign-in included."""
    if device is None or account is None:
        return None
    return device.nonce_for(account.id, account.session_generation, phone=True)


def start_session(rt: Runtime, account: Account, amr: list[str], ip: str | None,
                  previous: str | None = None, ttl: int | None = None, *,
                  public: bool = False, **detail: str) -> SsoSession:
    """Open an SSO session for ``account`` and audit ``login.success`` (not
    committed: the login's unit of work commits).

    :param amr: RFC 8176 methods used, e.g. ``["pwd"]``.
    :param previous: the browser's current session cookie, if any; that
        session ends (:func:`idp.sessions.end`, grants kept), so a new login
        never leaves an older one alive.
    :param ttl: lifetime in seconds (default ``session.sso_ttl``).
    :param public: the user said the computer is a public one (or it is a
        kiosk): the session also ends after ``session.public_idle_ttl``
        seconds unused, and its cookie with the browser.
    """
    replaced = load_session(rt.store, previous)
    if replaced is not None:
        sessions.end(rt, replaced, "new_login", revoke_grants=False, ip=ip)
    settings = rt.settings["session"]
    sso = create_session(rt.store, account.id, amr, ttl or settings["sso_ttl"],
                         account.session_generation,
                         idle_ttl=settings["public_idle_ttl" if public else "idle_ttl"],
                         public=public, user_agent=_user_agent(), ip=ip)
    public_detail = {"public_computer": True} if public else {}
    record("login.success", account_id=account.id, ip=ip, sid=sso.sid, amr=amr,
           **public_detail, **detail)
    return sso


def _user_agent() -> str:
    """The browser's ``User-Agent``, for the account console's list of
    sessions; empty outside a request (a CLI command, a test's service call)."""
    return request.headers.get("User-Agent", "") if has_request_context() else ""


def public_browser(rt: Runtime, previous: str | None, card_waiting: bool) -> bool:
    """Whether a login (or a registration) in this browser opens a public
    computer's session (:func:`start_session`, ``public``) whatever the
    login page's box says: when a card waits to be linked in the browser,
    which is then a kiosk's (issue 7: "the kiosk flow always behaves so");
    and when the browser's current session is a public computer's, so that
    logging in again there (``prompt=login``, ``max_age``, another account)
    never turns it into a long session by the box's default. Signing out
    first ends that session, and the next login asks afresh.

    :param previous: the browser's SSO session cookie, if any.
    :param card_waiting: a card waits to be linked in this browser (the
        kiosk's link page, ``idp.authn.kiosk.LINK_SESSION_KEY``).
    """
    if card_waiting:
        return True
    current = load_session(rt.store, previous)
    return current is not None and current.public


@dataclass(frozen=True)
class PendingLogin:
    """The first factor is proven, and a TOTP code must follow before the
    SSO session starts (:func:`finish_second_factor`).

    :ivar token: the secret the browser keeps (in its signed session cookie).
    :ivar enrol: the account has no authenticator yet (an operator, who must
        have one): it is set up first, with a secret of this pending login's
        own (:func:`pending_enrolment`).
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
    (the pending login keeps ``ttl`` and ``public`` for the session it opens).
    The pending login belongs to the account's session generation, like the
    session it opens: when every session of the account ends
    (:func:`idp.sessions.end_all`), it ends too (:func:`pending_account`).

    A pending login of an account without an authenticator (an operator)
    whose first factor may bind one (:func:`_may_enrol`) gets a new TOTP
    secret of its own, kept encrypted with it and shown only to the browser
    holding it: a sign-in with the operator's password, perhaps an
    intruder's, never sees the secret another sign-in will confirm. During
    the hold after a password reset by SMS code such a pending login sets
    none up and cannot complete (:func:`pending_enrolment`); it is audited
    as ``login.failure`` with ``reason`` ``reset_hold`` and ``enrol``."""
    if not totp.needs_second_factor(account):
        return start_session(rt, account, amr, ip, previous, ttl, public=public, **detail)
    token = random_token(24)
    enrol = not totp.has_totp(account)
    data = {"account_id": account.id, "generation": account.session_generation, "amr": amr,
            "detail": detail, "ttl": ttl, "public": public}
    if enrol and _may_enrol(amr):
        data["enrol_secret"] = rt.pii.encrypt("totp", totp.new_secret())
    if enrol and sms_reset_hold_until(rt, account) is not None:
        # This sign-in cannot complete before the hold ends
        # (:func:`pending_enrolment`): the operators see the attempt, which
        # may be a phone thief's.
        record_deferred(rt.audit, "login.failure", "failure", account_id=account.id, ip=ip,
                        reason="reset_hold", enrol=True)
    rt.store.put(_pending_key(token), data, rt.settings["totp"]["pending_login_ttl"])
    return PendingLogin(token=token, enrol=enrol)


def _pending_data(rt: Runtime, token: str | None) -> dict | None:
    """What the store keeps of the pending login ``token`` (see
    :func:`complete_login`), or None."""
    if not token or len(token) > 64:
        return None
    return rt.store.get(_pending_key(token))


def pending_account(rt: Runtime, token: str | None) -> Account | None:
    """The account of a live pending login, or None: no such pending
    login, an account that is gone or may not log in, or one whose sessions
    all ended since the pending login began (its session generation moved
    on: a password reset or change, a suspension, a new authenticator,
    :func:`idp.sessions.end_all`). A pending login is the first half of a
    session, and the first factor it proved may be what ended them (a
    leaked password, replaced): it must not open a session of the new
    generation with the next code."""
    data = _pending_data(rt, token)
    account = accounts.get_account(data["account_id"]) if data else None
    if account is None or not account.is_active:
        return None
    # One stored without a generation (before the rule, at most
    # totp.pending_login_ttl seconds earlier) is void too.
    return account if data.get("generation") == account.session_generation else None


def enrolment_superseded(rt: Runtime, token: str | None) -> bool:
    """Whether the pending login ``token``, which was to set up the
    account's first authenticator (an operator's), ended because one was
    set up meanwhile by another sign-in (which ends every session and
    pending login of the account): its page says so, since an authenticator
    the operator did not set up is an intruder's."""
    data = _pending_data(rt, token)
    if data is None or not data.get("enrol_secret"):
        return False
    account = accounts.get_account(data["account_id"])
    return account is not None and account.is_active and totp.has_totp(account)


def finish_second_factor(rt: Runtime, token: str, code: str, *, recovery: bool,
                         ip: str | None, previous: str | None = None,
                         device: throttle.DeviceCookie | None = None) -> SsoSession:
    """Complete a pending login with a TOTP code (or a recovery code): the
    session's ``amr`` gains ``otp`` and ``mfa``.

    :param device: the browser's device cookie: wrong codes from a browser
        that signed in to the account before count against it alone.
    :raises LoginFailedError: no live pending login (:func:`pending_account`),
        or a wrong code (the pending login stays, so the user can try again
        within the limits).
    :raises throttle.ThrottledError: the next attempt must wait.
    """
    account = pending_account(rt, token)
    if account is None:
        raise LoginFailedError("no pending login")
    known = _known(device, account)
    ok = (totp.use_recovery_code(rt, account, code, ip, known) if recovery
          else totp.verify_totp(rt, account, code, ip, known))
    if not ok:
        record_deferred(rt.audit, "login.failure", "failure", account_id=account.id, ip=ip,
                        reason="recovery_code" if recovery else "totp_code")
        raise LoginFailedError(account.username)
    return _start_pending(rt, token, account, ip, previous)


def _start_pending(rt: Runtime, token: str, account: Account, ip: str | None,
                   previous: str | None) -> SsoSession:
    data = rt.store.take(_pending_key(token))
    if data is None:
        raise LoginFailedError(account.username)
    return start_session(rt, account, combine_amr(data["amr"], "otp"), ip, previous,
                         data.get("ttl"), public=data.get("public", False), **data["detail"])


def _may_enrol(amr: list[str]) -> bool:
    """A first factor that may bind the first authenticator: the password,
    never a kiosk card read or an SMS code alone (NIST SP 800-63B §6.1.2.1)."""
    return "pwd" in amr and "hwk" not in amr


def _pending_secret(rt: Runtime, token: str | None) -> str | None:
    """The TOTP secret of the pending login ``token`` (see
    :func:`complete_login`), or None when it has none."""
    data = _pending_data(rt, token)
    if data is None or not data.get("enrol_secret"):
        return None
    return rt.pii.decrypt("totp", data["enrol_secret"])


class EnrolmentHeldError(Exception):
    """No authenticator may be set up at sign-in now: the account's
    password was reset by an SMS code less than
    ``session.reauth_hold_after_sms_reset`` seconds ago
    (:func:`idp.accounts.recovery.sms_reset_hold_until`), so it proves only
    the phone.

    :ivar until: Unix seconds when the hold ends.
    """

    def __init__(self, until: int) -> None:
        super().__init__(until)
        self.until = until


def _check_enrolment_hold(rt: Runtime, account: Account) -> None:
    """Refuse to bind the first authenticator of ``account`` at sign-in
    during the hold after a password reset by SMS code: the password then
    proves only the phone, and the app bound would end the hold (an
    account with an app is not held), so whoever holds the phone would make
    the account theirs (NIST SP 800-63B §6.1.2.1, §6.1.2.3;
    docs/recovery.md).

    :raises EnrolmentHeldError: the hold runs.
    """
    until = sms_reset_hold_until(rt, account)
    if until is not None:
        raise EnrolmentHeldError(until)


def pending_enrolment(rt: Runtime, token: str | None,
                      account: Account) -> totp.Enrolment | None:
    """The authenticator set-up shown to the pending login ``token`` of
    ``account`` (an operator without one), with the secret of that pending
    login alone: the same on every page of it (a wrong code is typed again),
    never on another's. None when it may not set one up: its first factor
    was a card at a kiosk or an SMS code alone, which must not bind
    somebody's authenticator to the operator's account (NIST SP 800-63B
    §6.1.2.1); only the password may.

    :raises EnrolmentHeldError: during the hold after a password reset by
        SMS code, whatever the first factor (:func:`_check_enrolment_hold`).
    """
    _check_enrolment_hold(rt, account)
    secret = _pending_secret(rt, token)
    return totp.enrolment_of(rt, account, secret) if secret is not None else None


def enrol_and_finish(rt: Runtime, token: str, code: str, ip: str | None,
                     previous: str | None = None,
                     device: throttle.DeviceCookie | None = None,
                     ) -> tuple[SsoSession, list[str]]:
    """Complete a pending login of an account without an authenticator by
    confirming the one set up with the pending login's own secret
    (:func:`pending_enrolment`), when the first factor was the password.

    :param device: the browser's device cookie (see :func:`finish_second_factor`).
    :returns: the session and the new recovery codes (to show once).
    :raises LoginFailedError: no live pending login (:func:`pending_account`),
        or a wrong code.
    :raises EnrolmentHeldError: during the hold after a password reset by
        SMS code (:func:`_check_enrolment_hold`), before the code is checked.
    :raises totp.TotpError: a first factor that may not bind an
        authenticator, or one was confirmed meanwhile.
    :raises throttle.ThrottledError: the next attempt must wait.
    """
    account = pending_account(rt, token)
    if account is None:
        raise LoginFailedError("no pending login")
    _check_enrolment_hold(rt, account)
    secret = _pending_secret(rt, token)
    if secret is None:
        raise totp.TotpError(_l("Sign in with your password to set up the authenticator."))
    try:
        codes = totp.enrol_with_secret(rt, account, secret, code, ip, _known(device, account))
    except ValueError:
        raise LoginFailedError(account.username) from None
    return _start_pending(rt, token, account, ip, previous), codes


def login_with_password(rt: Runtime, identifier: str, password: str, ip: str | None,
                        previous: str | None = None,
                        device: throttle.DeviceCookie | None = None, *,
                        public: bool = False,
                        department: str | None = None) -> SsoSession | PendingLogin:
    """Authenticate by password and start an SSO session (or a pending
    login, when a second factor must follow: :func:`complete_login`; a
    ``public`` computer's session as in :func:`start_session`).

    :param department: the department of the client the login is for: its
        legacy login names (aliases) name accounts too
        (:func:`accounts.find_for_login`).

    Failures count against the IP and against the account the identifier
    names, whichever identifier and spelling named it (username, ID or card
    number, phone in any format), so reformatting an identifier gives no
    extra guesses; an identifier that names no account is counted by its
    keyed hash, so the store holds no typed identifier. A browser whose
    device cookie names the account counts against that cookie instead, so
    a stranger's guesses never slow the owner down there (OWASP device
    cookies). Past the free failures each attempt waits, longer after each
    failure (:mod:`idp.authn.throttle`). Failures are audited.

    :param device: the browser's device cookie (``web.device_cookie``).
    :raises throttle.ThrottledError: the attempt came before its wait was
        over, or the IP is over its limit.
    :raises LoginFailedError: on any other failure.
    """
    typed, identifier = identifier.strip(), accounts.normalize_username(identifier)
    limits = rt.settings["throttle"]
    account = accounts.find_for_login(rt, identifier, department)
    key = (f"account:{account.id}" if account is not None
           else "unknown:" + keyed_hash(rt.token_hmac_key, identifier, "login_identifier"))
    known = _known(device, account)
    try:
        throttle.reserve_attempt(rt.store, limits, key, ip, known)
    except throttle.ThrottledError:
        record_deferred(rt.audit, "login.failure", "failure",
                        account_id=account.id if account else None, ip=ip, reason="throttled")
        raise
    if account is None and department in rt.legacy_logins:
        # A department that could not export checks its own users' first
        # login (lazy migration).
        from migration.lazy import first_login

        account = first_login(rt, department, typed, password, ip)
        ok = account is not None
    else:
        ok = accounts.verify_password(rt, account, password)
        if not ok and account is not None and department in rt.legacy_logins:
            # The name may be someone else's here and a department user's
            # there: the department is asked for its own user.
            from migration.lazy import first_login, is_departments

            if not is_departments(rt, account, department):
                lazy = first_login(rt, department, typed, password, ip)
                if lazy is not None:
                    account, ok = lazy, True
    if not ok or not account.is_active:
        record_deferred(rt.audit, "login.failure", "failure",
                        account_id=account.id if account else None, ip=ip,
                        reason="invalid_credentials" if not ok else "inactive")
        raise LoginFailedError(identifier)
    throttle.note_success(rt.store, limits, key, ip, known)
    return complete_login(rt, account, ["pwd"], ip, previous, public=public)


def register(rt: Runtime, username: str, password: str, *, name: str | None,
             email: str | None, ip: str | None, previous: str | None = None,
             public: bool = False) -> SsoSession:
    """Create an account (at most ``registrations_per_ip`` per window per IP)
    and log it in (a ``public`` computer's session as in :func:`start_session`).

    :raises RegistrationLimitError: over the per-IP limit.
    :raises accounts.AccountError: invalid or taken username, weak password.
    """
    _count_registration(rt, ip)
    account = accounts.create_account(rt, username, password, name=name, email=email, ip=ip)
    return start_session(rt, account, ["pwd"], ip, previous, public=public, via="registration")


def _count_registration(rt: Runtime, ip: str | None) -> None:
    limits = rt.settings["throttle"]
    if rt.store.incr(f"rl:register:ip:{ip}", limits["registration_window"]) > \
            limits["registrations_per_ip"]:
        raise RegistrationLimitError(ip)


def check_registration(rt: Runtime, username: str, password: str, *, name: str | None,
                       email: str | None, phone: str | None = None,
                       ip: str | None) -> None:
    """Check a registration form that has errors of its own (a confirmation
    that does not match, a field left empty) as :func:`register` would,
    without creating anything, so every error is shown at once. Counts as
    one registration from ``ip``, so usernames cannot be probed for being
    taken beyond the per-IP limit.

    :param phone: the mobile number of a registration by phone (no code is
        checked or used).
    :raises RegistrationLimitError: over the per-IP limit.
    :raises accounts.AccountErrors: what else is wrong.
    """
    _count_registration(rt, ip)
    accounts.validate_new_account(rt, username, password, email, name=name, phone=phone)


class InvalidCodeError(Exception):
    """The SMS code is wrong, expired or used up."""


def register_with_phone(rt: Runtime, phone: str, code: str, username: str, password: str,
                        *, name: str | None, ip: str | None,
                        previous: str | None = None,
                        device: throttle.DeviceCookie | None = None,
                        public: bool = False) -> SsoSession:
    """Create an account whose mobile number is proven by the code sent with
    :func:`send_sms_code` (purpose ``register``), and sign it in.

    The form is checked before the code is used, so a typing error in the
    username does not cost the user their code; whether the number already
    has an account is said only after the code proved the number, so the
    form cannot be used to find out which numbers have accounts.

    :param device: the browser's device cookie, as given when the code was sent.
    :param public: a public computer's session (:func:`start_session`).
    :raises RegistrationLimitError: over the per-IP limit.
    :raises accounts.AccountError: invalid or taken username, weak password,
        or a number that already belongs to an account.
    :raises InvalidCodeError: wrong, expired or used-up code.
    """
    _count_registration(rt, ip)
    accounts.validate_new_account(rt, username, password, None, name=name, phone=phone)
    e164 = otp.check_code(rt, phone, "register", code, _known_for_number(rt, phone, device))
    if e164 is None:
        raise InvalidCodeError(phone)
    if accounts.phone_taken(rt, e164):
        raise accounts.AccountError("phone", _l("This number belongs to another account."))
    account = accounts.create_account(rt, username, password, name=name, verified_phone=e164,
                                      ip=ip)
    return start_session(rt, account, ["sms"], ip, previous, public=public,
                         via="phone_registration")


class SmsUnavailableError(Exception):
    """No SMS gateway is configured, or it did not take the message."""


def _known_for_number(rt: Runtime, phone: str,
                      device: throttle.DeviceCookie | None) -> str | None:
    """The browser's device cookie nonce for the active account whose
    verified number ``phone`` is, or None. Looked up only for a browser
    with a device cookie, which learns nothing it did not know: it signed
    in to that account."""
    if device is None or not device.entries:
        return None
    account = accounts.find_by_phone(rt, phone)
    if account is None or not account.phone_number_verified or not account.is_active:
        return None
    return _known_phone(device, account)


def _send(rt: Runtime, phone: str, purpose: str, ip: str | None,
          known: str | None, *, own_number: bool = False) -> otp.SentCode:
    if rt.registries.sms is None:
        raise SmsUnavailableError("no SMS gateway is configured")
    try:
        sent = otp.send_code(rt, rt.registries.sms, phone, purpose, ip, known,
                             own_number=own_number)
    except (SmsGatewayError, RegistryUnavailableError) as exc:
        raise SmsUnavailableError(str(exc)) from None
    except SmsBudgetExhaustedError as exc:
        if exc.first:
            sms_budget.alert_operators(rt, exc, ip)
        raise
    record_deferred(rt.audit, "sms.sent", ip=ip, purpose=purpose, message_id=sent.message_id)
    return sent


def send_sms_code(rt: Runtime, phone: str, purpose: str, ip: str | None,
                  device: throttle.DeviceCookie | None = None) -> otp.SentCode:
    """Send a code by SMS for ``purpose`` (``login``, ``register``...). The
    answer is the same whether or not an account holds the number: the code
    is sent either way.

    :param device: the browser's device cookie. When it names the account
        holding the number, the code, its resend wait and the daily count
        are this browser's own (:mod:`idp.authn.otp`); pass the same cookie
        when the code is checked (:func:`login_with_sms`,
        :func:`reset_password_by_sms`).
    :raises IdentifierError: not a valid mobile number, or not of a country
        in ``sms.allowed_country_codes``.
    :raises otp.OtpThrottledError: a send limit is reached.
    :raises SmsBudgetExhaustedError: an hourly budget of the provider
        is used up (the first refusal of a window is audited as
        ``sms.budget_exhausted`` and logged as a warning).
    :raises SmsUnavailableError: no gateway, or the gateway failed.
    """
    return _send(rt, phone, purpose, ip, _known_for_number(rt, phone, device))


def login_with_sms(rt: Runtime, phone: str, code: str, ip: str | None,
                   previous: str | None = None,
                   device: throttle.DeviceCookie | None = None, *,
                   public: bool = False) -> SsoSession | PendingLogin:
    """Sign in with a code sent by :func:`send_sms_code` (``amr`` ``sms``);
    a second factor may follow (:func:`complete_login`; a ``public``
    computer's session as in :func:`start_session`).

    :param device: the browser's device cookie, as given when the code was sent.
    :raises LoginFailedError: wrong, expired or used-up code, or no active
        account with this verified number.
    """
    e164 = otp.check_code(rt, phone, "login", code, _known_for_number(rt, phone, device))
    account = accounts.find_by_phone(rt, e164) if e164 else None
    if account is None or not account.phone_number_verified or not account.is_active:
        record_deferred(rt.audit, "login.failure", "failure",
                        account_id=account.id if account else None, ip=ip,
                        reason="sms_code" if e164 is None else "no_account", amr=["sms"])
        raise LoginFailedError(phone)
    return complete_login(rt, account, ["sms"], ip, previous, public=public)


def confirm_phone(rt: Runtime, account: Account, phone: str, code: str, password: str,
                  ip: str | None, totp_code: str | None = None,
                  device: throttle.DeviceCookie | None = None) -> bool:
    """Store ``phone`` as the account's confirmed mobile number, proven by the
    code sent with :func:`send_sms_code` (purpose ``verify_phone``) and the
    account's password: a session alone (a kiosk card read, a browser left
    signed in) must not change the number password resets go to. Not
    committed; the old number is told after the caller's commit.

    Replacing a confirmed number changes the channel of password resets
    and SMS second factors, so: the carrier check (about the old number)
    stops counting; unless a current TOTP code also confirms the change,
    all verification evidence stops counting (level 1), as a password alone
    proves nothing more; every SSO session ends; the old number is told.

    :param device: the browser's device cookie (its own throttle counters).
    :returns: True when a confirmed number was replaced (the user must sign
        in again).
    :raises LoginFailedError: wrong password.
    :raises throttle.ThrottledError: a password or TOTP attempt must wait.
    :raises InvalidCodeError: wrong, expired or used-up code.
    :raises accounts.AccountError: the number belongs to another account.
    """
    from idp.accounts.verification import revoke_evidence

    confirm_password(rt, account, password, ip, device)
    e164 = otp.check_code(rt, phone, "verify_phone", code,
                          _known_for_number(rt, phone, device))
    if e164 is None:
        raise InvalidCodeError(phone)
    old = accounts.phone_number(rt, account) if account.phone_number_verified else None
    accounts.set_phone_number(rt, account, e164, verified=True)
    if old is None or old == e164:
        record("account.phone_verified", account_id=account.id, ip=ip)
        return False
    proven = bool(totp_code) and totp.verify_totp(rt, account, totp_code or "", ip,
                                                  _known(device, account))
    revoked = revoke_evidence(account, "phone_changed",
                              None if not proven else ("carrier_three_element",))
    sessions.end_all(rt, account, "phone_changed", revoke_grants=False, ip=ip)
    record("account.phone_changed", account_id=account.id, ip=ip, totp=proven,
           evidence_revoked=revoked)
    # The previous number learns that it no longer signs in.
    after_commit(functools.partial(notify_phone, rt, old, "phone_changed"))
    return True


def confirm_password(rt: Runtime, account: Account, password: str, ip: str | None,
                     device: throttle.DeviceCookie | None = None) -> None:
    """Check the password of the signed-in ``account`` (a step-up factor),
    throttled like a login (on the same counters).

    :param device: the browser's device cookie (its own throttle counters).
    :raises throttle.ThrottledError: the attempt must wait.
    :raises LoginFailedError: wrong password or no password set.
    """
    limits = rt.settings["throttle"]
    key = f"account:{account.id}"
    known = _known(device, account)
    throttle.reserve_attempt(rt.store, limits, key, ip, known)
    if not accounts.verify_password(rt, account, password):
        record_deferred(rt.audit, "login.failure", "failure", account_id=account.id, ip=ip,
                        reason="invalid_credentials", step_up=True)
        raise LoginFailedError(account.username)
    throttle.note_success(rt.store, limits, key, ip, known)


def send_step_up_code(rt: Runtime, account: Account, ip: str | None,
                      device: throttle.DeviceCookie | None = None) -> otp.SentCode:
    """Send a step-up code to the account's verified mobile number, of
    whatever country (it was proven by its holder; ``own_number`` of
    :func:`otp.send_code`).

    :param device: the browser's device cookie (its own code and send limits).
    :raises SmsUnavailableError: no gateway, or the gateway failed.
    :raises otp.OtpThrottledError: a send limit is reached.
    :raises SmsBudgetExhaustedError: an hourly budget is used up.
    :raises LoginFailedError: the account has no verified number.
    """
    phone = accounts.phone_number(rt, account)
    if not phone or not account.phone_number_verified:
        raise LoginFailedError(account.username)
    return _send(rt, phone, "step_up", ip, _known_phone(device, account), own_number=True)


def check_step_up_code(rt: Runtime, account: Account, code: str, ip: str | None,
                       device: throttle.DeviceCookie | None = None) -> None:
    """Check a step-up code sent by :func:`send_step_up_code`.

    :param device: the browser's device cookie, as given when the code was sent.
    :raises InvalidCodeError: wrong, expired or used-up code.
    """
    phone = accounts.phone_number(rt, account)
    if not phone or otp.check_code(rt, phone, "step_up", code,
                                   _known_phone(device, account)) is None:
        record_deferred(rt.audit, "login.failure", "failure", account_id=account.id, ip=ip,
                        reason="sms_code", step_up=True)
        raise InvalidCodeError(phone or "")


class PasswordCheckLimitError(Exception):
    """Too many new passwords checked in the window on pages that need no
    sign-in (``throttle.password_checks_per_ip``), from one client IP
    address or, with ``browser``, from one browser known to the account.

    :ivar browser: the count was the known browser's own.
    """

    def __init__(self, browser: bool) -> None:
        super().__init__("browser" if browser else "ip")
        self.browser = browser


def _count_password_check(rt: Runtime, ip: str | None, known: str | None) -> None:
    """Count one new-password check on a page that needs no sign-in (the
    SMS password reset): the estimate (zxcvbn) costs up to half a second of
    CPU under a process-wide lock (docs/passwords.md), so one client must
    not keep every worker's estimator busy. Registration is counted by
    ``registrations_per_ip`` instead.

    From an unknown browser the check counts against ``ip``. A browser
    known to the account of the number (``known``, the nonce of its device
    cookie, :func:`_known_for_number`) counts against a count of its own
    with the same limit instead, as a login from it does (OWASP device
    cookies): whoever exhausts the address's count (an office, a carrier's
    NAT) cannot stop the owner resetting the password from their own
    browser (docs/limits.md).

    :raises PasswordCheckLimitError: over ``throttle.password_checks_per_ip``
        in ``throttle.password_check_window`` seconds.
    """
    limits = rt.settings["throttle"]
    key = (f"rl:password_check:dev:{hashlib.sha256(known.encode()).hexdigest()[:32]}"
           if known else f"rl:password_check:ip:{ip}")
    if rt.store.incr(key, limits["password_check_window"]) > limits["password_checks_per_ip"]:
        raise PasswordCheckLimitError(browser=known is not None)


def check_reset_password(rt: Runtime, phone: str, password: str, ip: str | None,
                         device: throttle.DeviceCookie | None = None) -> None:
    """Check the new password of a reset form that has an error of its own
    (a confirmation that differs), so every error is shown at once: against
    the policy and the number typed (the account is not known before a
    code proves the number). Counted as one password check
    (:func:`_count_password_check`).

    :param device: the browser's device cookie.
    :raises PasswordCheckLimitError: over the limit.
    :raises accounts.AccountError: on field ``password``, what is wrong.
    """
    _count_password_check(rt, ip, _known_for_number(rt, phone, device))
    accounts.check_password_policy(rt, password, user_inputs=(phone,))


def reset_password_by_sms(rt: Runtime, phone: str, code: str, password: str,
                          ip: str | None, device: throttle.DeviceCookie | None = None,
                          ) -> Account:
    """Set a new password for the account holding the verified number
    ``phone``, proven by a code sent for ``reset_password``. Not committed.

    An SMS code alone proves only the phone, so the identity verification
    stops counting (the account drops to level 1 until it verifies again),
    every SSO session ends and every grant is revoked. The authenticator
    app and its recovery codes stay (NIST SP 800-63B §6.1.2.3: a phone
    thief must not strip the owner's), and their presence is made known:
    the phone is told (template ``password_reset_authenticator_kept`` with
    the ``date`` it was set up) that the app is still needed to sign in
    and that one that is not theirs is removed at a service counter. For
    ``session.reauth_hold_after_sms_reset`` seconds the new password and a
    code to that phone do not re-authenticate (:func:`reauth_method`) nor
    lift a login or the identity to level 3 (:func:`idp.accounts.recovery.sms_reset_hold_until`).

    In order: the attempt is counted against the client IP, or the
    browser's own count when it is known to the account of the number
    (:func:`_count_password_check`); the code is proven without being used
    up (:func:`otp.prove_code`), so the account is known only to whoever
    holds the phone; the new password is checked against the policy and
    that account's own identifiers (username, name, e-mail, numbers: NIST
    SP 800-63B §5.1.1.2) and the number typed; only then is the code used.

    :param device: the browser's device cookie, as given when the code was sent.
    :raises PasswordCheckLimitError: too many attempts from ``ip`` (or
        from this known browser).
    :raises accounts.AccountError: the new password breaks the policy (the
        code is not used up then).
    :raises InvalidCodeError: wrong, expired or used-up code, or no active
        account with this verified number (one answer for both).
    """
    from idp.accounts.verification import revoke_evidence

    known = _known_for_number(rt, phone, device)
    _count_password_check(rt, ip, known)
    proven = otp.prove_code(rt, phone, "reset_password", code, known)
    account = accounts.find_by_phone(rt, proven.phone) if proven else None
    if account is None or not account.phone_number_verified or not account.is_active:
        if proven is not None:
            otp.use_code(rt, proven)
        record_deferred(rt.audit, "password.reset", "failure",
                        account_id=account.id if account else None, ip=ip,
                        reason="sms_code" if proven is None else "no_account")
        raise InvalidCodeError(phone)
    accounts.check_password_policy(rt, password, account=account, user_inputs=(phone,))
    if not otp.use_code(rt, proven):
        record_deferred(rt.audit, "password.reset", "failure", account_id=account.id, ip=ip,
                        reason="sms_code")
        raise InvalidCodeError(phone)
    account.password_hash = rt.hasher.hash(password)
    account.password_reset_by_sms_at = utcnow()
    # The new password passed today's policy, and no old one works beside it.
    account.password_change_required = False
    forget_legacy_credentials(account)
    revoked = revoke_evidence(account, "password_reset_by_sms")
    kept = totp.added_on(account)
    record("password.reset", account_id=account.id, ip=ip, evidence_revoked=revoked,
           authenticator_kept=kept is not None)
    sessions.end_all(rt, account, "password_reset", revoke_grants=True, ip=ip)
    if kept is not None:
        notify_after_commit(rt, account, "password_reset_authenticator_kept",
                            {"date": kept.isoformat()})
    return account


class ReauthUnavailableError(Exception):
    """This session cannot re-authenticate, whatever is typed.

    :ivar reason: ``kiosk`` (a session opened by a card read at a kiosk:
        sign in on your own device), ``no_password`` (the account has
        none), ``no_second_factor`` (no authenticator app and no verified
        phone), or ``reset_hold`` (the password was just reset by SMS code
        and the only second factor is that phone).
    :ivar until: for ``reset_hold``, Unix seconds when the hold ends.
    """

    def __init__(self, reason: str, until: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until


class ReauthRequiredError(Exception):
    """The action needs a live re-authentication of the session
    (:func:`reauthenticate`, within ``session.reauth_ttl`` seconds)."""


def reauth_method(rt: Runtime, sso: SsoSession, account: Account) -> str:
    """The second factor that, with the password, re-authenticates ``sso``
    (NIST SP 800-63B §6.1.2.1: authenticate at the level the authenticator
    will be used at): ``totp`` (a code of the authenticator app, or a
    recovery code) when the account has one, else ``sms`` (a code sent to
    its verified phone).

    :raises ReauthUnavailableError: a kiosk session; an account without a
        password or without any second factor; or ``sms`` while the
        password was set by an SMS code less than
        ``session.reauth_hold_after_sms_reset`` seconds ago (both would
        prove the same phone).
    """
    if "hwk" in sso.amr:
        raise ReauthUnavailableError("kiosk")
    if not account.password_hash:
        raise ReauthUnavailableError("no_password")
    if totp.has_totp(account):
        return "totp"
    if not account.phone_number_verified or not account.phone_number_enc:
        raise ReauthUnavailableError("no_second_factor")
    until = sms_reset_hold_until(rt, account)
    if until is not None:
        raise ReauthUnavailableError("reset_hold", until)
    return "sms"


def is_reauthenticated(rt: Runtime, sso: SsoSession) -> bool:
    """Whether ``sso`` re-authenticated less than ``session.reauth_ttl``
    seconds ago (and is not a kiosk session)."""
    return (sso.reauth_at is not None and "hwk" not in sso.amr
            and 0 <= epoch() - sso.reauth_at < rt.settings["session"]["reauth_ttl"])


def require_reauth(rt: Runtime, sso: SsoSession) -> None:
    """Refuse an action that changes how the account signs in unless ``sso``
    re-authenticated recently (GitHub's "sudo mode", Keycloak's
    re-authentication for sensitive actions).

    :raises ReauthUnavailableError: a kiosk session (never).
    :raises ReauthRequiredError: no live re-authentication.
    """
    if "hwk" in sso.amr:
        raise ReauthUnavailableError("kiosk")
    if not is_reauthenticated(rt, sso):
        raise ReauthRequiredError(sso.sid)


def send_reauth_code(rt: Runtime, sso: SsoSession, account: Account,
                     ip: str | None, device: throttle.DeviceCookie | None = None,
                     ) -> otp.SentCode:
    """Send a re-authentication code (purpose ``reauth``) to the account's
    verified phone, when that is its second factor (:func:`reauth_method`),
    of whatever country: a number verified before ``sms.allowed_country_codes``
    existed must not leave its account unable ever to re-authenticate, and
    it is no number a stranger typed (``own_number`` of :func:`otp.send_code`).

    :param device: the browser's device cookie (its own code and send limits).
    :raises ReauthUnavailableError: as :func:`reauth_method`.
    :raises ValueError: the account re-authenticates with its authenticator app.
    :raises otp.OtpThrottledError: a send limit is reached.
    :raises SmsBudgetExhaustedError: an hourly budget is used up.
    :raises SmsUnavailableError: no gateway, or the gateway failed.
    """
    if reauth_method(rt, sso, account) != "sms":
        raise ValueError("this account re-authenticates with its authenticator app")
    return _send(rt, accounts.phone_number(rt, account) or "", "reauth", ip,
                 _known_phone(device, account), own_number=True)


def _reauth_failed(rt: Runtime, account: Account, sso: SsoSession, ip: str | None,
                   reason: str) -> None:
    record_deferred(rt.audit, "reauth.failure", "failure", account_id=account.id, ip=ip,
                    sid=sso.sid, reason=reason)


def _check_current_password(rt: Runtime, account: Account, sso: SsoSession, password: str,
                            ip: str | None, event: str,
                            device: throttle.DeviceCookie | None) -> None:
    """Check the password of the signed-in ``account``, counted against the
    same per-account (or device cookie) and per-IP limits as logins; a
    failure is audited as ``event``.

    :raises throttle.ThrottledError: too many failures.
    :raises LoginFailedError: wrong password.
    """
    limits = rt.settings["throttle"]
    key = f"account:{account.id}"
    known = _known(device, account)
    throttle.reserve_attempt(rt.store, limits, key, ip, known)
    if not accounts.verify_password(rt, account, password):
        record_deferred(rt.audit, event, "failure", account_id=account.id, ip=ip, sid=sso.sid,
                        reason="invalid_credentials")
        raise LoginFailedError(account.username)
    throttle.note_success(rt.store, limits, key, ip, known)


def reauthenticate(rt: Runtime, sso: SsoSession, account: Account, password: str,
                   code: str, *, recovery: bool, ip: str | None,
                   device: throttle.DeviceCookie | None = None) -> SsoSession:
    """Re-authenticate the session ``sso``: the password, then the second
    factor of :func:`reauth_method` -- a code of the authenticator app or,
    with ``recovery``, a recovery code (spent; a lost device is replaced
    this way), or the SMS code sent by :func:`send_reauth_code`. A wrong
    password does not use up the code. On success the session records the
    time (``reauth_at``) for ``session.reauth_ttl`` seconds, under a new
    cookie value (:func:`idp.sessions.renew`); its ``sid``, ``amr`` and ``auth_time``
    stay those of the login. Audited either way (a failure through the
    deferred writer); not committed.

    :param device: the browser's device cookie (its own throttle counters).
    :returns: the session that replaces ``sso`` (its cookie must be set).
    :raises ReauthUnavailableError: as :func:`reauth_method`.
    :raises LoginFailedError: wrong password.
    :raises InvalidCodeError: wrong, expired or used-up code.
    :raises throttle.ThrottledError: too many wrong passwords or app codes.
    """
    try:
        method = reauth_method(rt, sso, account)
    except ReauthUnavailableError as exc:
        _reauth_failed(rt, account, sso, ip, exc.reason)
        raise
    _check_current_password(rt, account, sso, password, ip, "reauth.failure", device)
    known = _known(device, account)
    if method == "totp":
        used, failure = ("recovery_code", "recovery_code") if recovery else ("otp", "totp_code")
        ok = (totp.use_recovery_code(rt, account, code, ip, known) if recovery
              else totp.verify_totp(rt, account, code, ip, known))
    else:
        used, failure = "sms", "sms_code"
        ok = otp.check_code(rt, accounts.phone_number(rt, account) or "", "reauth",
                            code, _known_phone(device, account)) is not None
    if not ok:
        _reauth_failed(rt, account, sso, ip, failure)
        raise InvalidCodeError(used)
    renewed = sessions.renew(rt, sso, reauth_at=epoch())
    record("reauth.success", account_id=account.id, ip=ip, sid=sso.sid, method=["pwd", used])
    return renewed


def start_authenticator(rt: Runtime, sso: SsoSession, account: Account) -> totp.Enrolment:
    """Start setting up an authenticator app in the account console, after a
    re-authentication (NIST SP 800-63B §6.1.2.1), with a new secret.

    :raises ReauthUnavailableError, ReauthRequiredError: as :func:`require_reauth`.
    :raises totp.TotpError: as :func:`totp.start_enrolment`.
    """
    require_reauth(rt, sso)
    return totp.start_enrolment(rt, account, fresh=True)


def confirm_authenticator(rt: Runtime, sso: SsoSession, account: Account, code: str,
                          ip: str | None, device: throttle.DeviceCookie | None = None,
                          ) -> list[str]:
    """Confirm the authenticator being set up, after a re-authentication:
    every session ends (this one too) and the verified phone is told
    (:func:`totp.confirm_enrolment`).

    :param device: the browser's device cookie (its own throttle counters).
    :returns: the recovery codes in clear, to show once.
    :raises ReauthUnavailableError, ReauthRequiredError: as :func:`require_reauth`.
    :raises totp.TotpError, throttle.ThrottledError, ValueError: as
        :func:`totp.confirm_enrolment`.
    """
    require_reauth(rt, sso)
    return totp.confirm_enrolment(rt, account, code, ip, _known(device, account))


def replace_recovery_codes(rt: Runtime, sso: SsoSession, account: Account,
                           ip: str | None) -> list[str]:
    """New recovery codes in place of the old ones, after a re-authentication.

    :returns: the recovery codes in clear, to show once.
    :raises ReauthUnavailableError, ReauthRequiredError: as :func:`require_reauth`.
    :raises totp.TotpError: no authenticator is set up.
    """
    require_reauth(rt, sso)
    return totp.regenerate_recovery_codes(rt, account, ip)


def remove_authenticator(rt: Runtime, sso: SsoSession, account: Account,
                         ip: str | None) -> None:
    """Remove the authenticator app and its recovery codes, after a
    re-authentication (which a recovery code can complete when the device
    is lost); the verified phone is told.

    :raises ReauthUnavailableError, ReauthRequiredError: as :func:`require_reauth`.
    :raises totp.TotpError: an operator's (they must keep one), or none set up.
    """
    require_reauth(rt, sso)
    totp.disable(rt, account, ip)


def phone_change_needs_reauth(account: Account) -> bool:
    """Whether confirming a mobile number for ``account`` needs a
    re-authentication first: it replaces a verified number (the channel of
    password resets and SMS factors), or adds one to an account with an
    authenticator app. A first number of a password-only account is proven
    by the password and its own code, as before."""
    return account.phone_number_verified or totp.has_totp(account)


def change_password(rt: Runtime, sso: SsoSession, account: Account, current: str,
                    new: str, ip: str | None,
                    device: throttle.DeviceCookie | None = None) -> SsoSession:
    """Change the password in the account console: a live re-authentication,
    the current password typed again, and a new one that meets the policy
    and differs from it. Every other SSO session of the account ends and
    the grants issued outside this session are revoked; this browser goes
    on in a new session of the account's new generation (a new cookie,
    the same ``sid``, login and re-authentication). Audited
    (``password.changed``); the verified phone is told (template
    ``password_changed``) after the caller's commit. Not committed.

    :param device: the browser's device cookie (its own throttle counters).
    :returns: the session that replaces ``sso`` (its cookie must be set).
    :raises ReauthUnavailableError, ReauthRequiredError: as :func:`require_reauth`.
    :raises accounts.AccountError: on field ``password``: the new password
        breaks the policy or is the current one.
    :raises LoginFailedError: the current password is wrong.
    :raises throttle.ThrottledError: too many wrong passwords.
    """
    require_reauth(rt, sso)
    accounts.check_password_policy(rt, new, account=account)
    _check_current_password(rt, account, sso, current, ip, "password.change_failed", device)
    # The current password was just proven, so this compares with the stored one.
    if constant_time_equals(new, current):
        raise accounts.AccountError("password", _MUST_DIFFER)
    return _set_password(rt, sso, account, new, ip)


_MUST_DIFFER = _l("The new password must differ from the current one.")


def _set_password(rt: Runtime, sso: SsoSession, account: Account, new: str, ip: str | None,
                  **detail: Any) -> SsoSession:
    """Store ``new`` (checked by the caller), end every other session of the
    account and revoke the grants issued outside ``sso``, tell the verified
    phone after the commit; audited as ``password.changed``.

    :returns: the session that replaces ``sso``.
    """
    account.password_hash = rt.hasher.hash(new)
    account.password_reset_by_sms_at = None
    account.password_change_required = False
    forget_legacy_credentials(account)
    record("password.changed", account_id=account.id, ip=ip, sid=sso.sid, **detail)
    ended = sessions.end_all(rt, account, "password_changed", revoke_grants=True, keep=sso, ip=ip)
    notify_after_commit(rt, account, "password_changed")
    return ended.kept


def replace_required_password(rt: Runtime, sso: SsoSession, account: Account, new: str,
                              ip: str | None) -> SsoSession:
    """Replace a password that logged in but fails today's policy (a legacy
    one, case M-PW-3: ``password_change_required``) before the login goes
    on. The login that just proved the password is the authentication: the
    flag is set only by that login, in this session's account. The new
    password meets the policy and differs from the old; every other
    session of the account ends, as in :func:`change_password`. Not
    committed.

    :returns: the session that replaces ``sso`` (its cookie must be set).
    :raises accounts.AccountError: on field ``password``: the new password
        breaks the policy or is the old one, or no change is required.
    """
    if not account.password_change_required:
        raise accounts.AccountError("password", _l("Your password does not need to change."))
    accounts.check_password_policy(rt, new, account=account)
    if accounts.verify_password(rt, account, new):
        raise accounts.AccountError("password", _MUST_DIFFER)
    return _set_password(rt, sso, account, new, ip, reason="policy")

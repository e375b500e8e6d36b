"""TOTP second factor (RFC 6238, through pyotp) with one-time recovery codes.

The shared secret is stored encrypted (idp.accounts.pii, kind ``totp``);
recovery codes only as keyed hashes. A code is accepted once: the time step
it belongs to must be later than the last accepted one (RFC 6238 §5.2), set
with a conditional UPDATE so two concurrent submissions cannot both pass.
Wrong codes are throttled like password guesses. Operators (``is_admin``)
must have a confirmed TOTP credential and cannot remove it themselves.

In the account console, setting up, replacing and removing the credential
and its recovery codes need a live re-authentication of the session
(NIST SP 800-63B §6.1.2.1), which :mod:`idp.authn.service` checks before it
calls the functions here; the verified phone is told of every such change.
An operator at a service counter removes a credential the person lost or
never set up (:func:`remove`, NIST SP 800-63B §6.1.2.3).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime

import pyotp
import segno
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from idp import sessions, unit_of_work
from idp.accounts.models import Account, RecoveryCode, TotpCredential
from idp.accounts.notify import notify_after_commit
from idp.audit.service import record
from idp.authn import throttle
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import constant_time_equals, keyed_hash
from idp.timeutil import utcnow

RECOVERY_PURPOSE = "recovery_code"
#: Time steps either side of now accepted for clock drift (RFC 6238 §5.2).
VALID_WINDOW = 1
#: Recovery codes issued at a time.
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class TotpError(Exception):
    """A TOTP change is not possible; ``message`` says why (translated when rendered)."""

    def __init__(self, message: str) -> None:
        super().__init__(str(message))
        self.message = message


@dataclass(frozen=True)
class Enrolment:
    """A started enrolment, shown to the user once.

    :ivar secret: the base32 secret, for typing into an authenticator.
    :ivar uri: the ``otpauth://`` provisioning URI.
    :ivar qr_svg: the URI as an inline SVG QR code.
    """

    secret: str
    uri: str
    qr_svg: str


#: The queries of :func:`credential` and :func:`has_totp`, built once (every
#: login asks :func:`needs_second_factor`; building the statement again
#: cost as much CPU as running it: issue 9).
_CREDENTIAL = select(TotpCredential).where(TotpCredential.account_id == bindparam("account_id"))
_CONFIRMED_AT = select(TotpCredential.confirmed_at).where(
    TotpCredential.account_id == bindparam("account_id"))


def credential(account: Account) -> TotpCredential | None:
    """The account's TOTP credential, confirmed or not, or None."""
    return db.session.scalar(_CREDENTIAL, {"account_id": account.id})


def has_totp(account: Account) -> bool:
    """True when the account has a confirmed TOTP credential (asked at every
    login). Reads the confirmation time only, not the credential (whose
    secret a login without a second factor never needs)."""
    return db.session.scalar(_CONFIRMED_AT, {"account_id": account.id}) is not None


def added_on(account: Account) -> date | None:
    """The day (UTC) the account's authenticator was set up, or None when it
    has no confirmed one."""
    item = credential(account)
    return item.confirmed_at.date() if item is not None and item.confirmed_at else None


def needs_second_factor(account: Account) -> bool:
    """A login of ``account`` must add TOTP: it has one, or it is an operator."""
    return account.is_admin or has_totp(account)


def _issuer(rt: Runtime) -> str:
    return rt.settings["totp"]["issuer_name"]


def new_secret() -> str:
    """A new random TOTP secret (base32, 160 bits: RFC 4226 §4 R6)."""
    return pyotp.random_base32()


def enrolment_of(rt: Runtime, account: Account, secret: str) -> Enrolment:
    """What the user is shown to set up ``secret`` for ``account``: the
    secret, its ``otpauth://`` URI and the URI as a QR code."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=account.username, issuer_name=_issuer(rt))
    return Enrolment(secret, uri, segno.make(uri, error="m").svg_inline(scale=4))


def start_enrolment(rt: Runtime, account: Account, fresh: bool = False) -> Enrolment:
    """Create (or show again) an unconfirmed TOTP credential (not committed).

    :param fresh: give the unconfirmed credential a new secret: a secret
        shown earlier (perhaps to another session) must not become the
        account's authenticator when the user starts setting one up.
    :raises TotpError: the account already has a confirmed credential.
    """
    item = credential(account)
    if item is not None and item.confirmed_at is not None:
        raise TotpError(_l("An authenticator is already set up. Remove it first."))
    if item is None:
        item = TotpCredential(account_id=account.id,
                              secret_enc=rt.pii.encrypt("totp", new_secret()))
        db.session.add(item)
        db.session.flush()
    elif fresh:
        item.secret_enc = rt.pii.encrypt("totp", new_secret())
        item.last_step = 0
    return enrolment_of(rt, account, rt.pii.decrypt("totp", item.secret_enc))


def _matching_step(secret: str, code: str, now: float) -> int | None:
    code = "".join((code or "").split())
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if constant_time_equals(totp.generate_otp(step), code):
            return step
    return None


def _check(rt: Runtime, account: Account, item: TotpCredential, code: str,
           ip: str | None, device: str | None = None) -> bool:
    """Throttled, replay-safe check of ``code`` against ``item``."""
    limits = rt.settings["throttle"]
    key = f"totp:{account.id}"
    throttle.reserve_attempt(rt.store, limits, key, ip, device)
    step = _matching_step(rt.pii.decrypt("totp", item.secret_enc), code, time.time())
    if step is None:
        return False
    won = db.session.execute(
        update(TotpCredential)
        .where(TotpCredential.id == item.id, TotpCredential.last_step < step)
        .values(last_step=step)).rowcount
    if won != 1:
        return False
    throttle.note_success(rt.store, limits, key, ip, device)
    return True


def _new_recovery_codes(rt: Runtime, account: Account) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        db.session.add(RecoveryCode(account_id=account.id, code_hash=keyed_hash(
            rt.token_hmac_key, raw, RECOVERY_PURPOSE)))
    return codes


def confirm_enrolment(rt: Runtime, account: Account, code: str, ip: str | None,
                      device: str | None = None) -> list[str]:
    """Confirm the unconfirmed credential with a code from the authenticator
    and issue recovery codes. Every SSO session of the account ends: one
    opened before had no second factor and must not outlive it. Not
    committed; after the caller's commit it tells the verified phone (NIST
    SP 800-63B §6.1.2.1: a notice by another channel than the one that
    bound it), template
    ``authenticator_added`` with ``date`` (YYYY-MM-DD, UTC).

    :param device: the browser's device cookie nonce for the account
        (:meth:`throttle.DeviceCookie.nonce_for`): wrong codes count against
        it alone; None for a browser unknown to the account.
    :returns: the recovery codes in clear, to show once.
    :raises TotpError: no enrolment started, or already confirmed.
    :raises throttle.ThrottledError: the attempt must wait.
    :raises ValueError: the code is wrong.
    """
    item = credential(account)
    if item is None or item.confirmed_at is not None:
        raise TotpError(_l("Start setting up an authenticator first."))
    if not _check(rt, account, item, code, ip, device):
        raise ValueError("wrong code")
    item.confirmed_at = utcnow()
    return _enrolled(rt, account, item.confirmed_at, ip)


def _enrolled(rt: Runtime, account: Account, confirmed_at: datetime,
              ip: str | None) -> list[str]:
    """The end of a confirmed enrolment: new recovery codes, every session
    ended, audited (not committed), the verified phone told after the commit."""
    codes = _new_recovery_codes(rt, account)
    sessions.end_all(rt, account, "totp_enrolled", revoke_grants=False, ip=ip)
    record("totp.enrolled", account_id=account.id, ip=ip)
    notify_after_commit(rt, account, "authenticator_added",
                        {"date": confirmed_at.date().isoformat()})
    return codes


def enrol_with_secret(rt: Runtime, account: Account, secret: str, code: str,
                      ip: str | None, device: str | None = None) -> list[str]:
    """Confirm an authenticator whose ``secret`` was never stored on the
    account: one held by a single pending login (an operator setting up
    their first authenticator at sign-in), so a secret shown to one sign-in
    never becomes the one another confirms. The credential is written,
    confirmed, only when ``code`` matches ``secret``; the step is recorded,
    so the code does not serve again (RFC 6238 §5.2). Otherwise as
    :func:`confirm_enrolment` (sessions end, audit, notice). Not committed.

    :param device: as for :func:`confirm_enrolment`.
    :returns: the recovery codes in clear, to show once.
    :raises TotpError: the account has a confirmed authenticator already.
    :raises throttle.ThrottledError: the attempt must wait.
    :raises ValueError: the code is wrong.
    """
    limits = rt.settings["throttle"]
    key = f"totp:{account.id}"
    throttle.reserve_attempt(rt.store, limits, key, ip, device)
    step = _matching_step(secret, code, time.time())
    if step is None:
        raise ValueError("wrong code")
    now = utcnow()
    values = {"secret_enc": rt.pii.encrypt("totp", secret), "last_step": step,
              "confirmed_at": now}
    item = credential(account)
    if item is None:
        db.session.add(TotpCredential(account_id=account.id, **values))
        try:
            db.session.flush()
        except IntegrityError:
            # Another sign-in confirmed its own meanwhile. A failed flush
            # leaves the session unusable, so the unit ends here (nothing
            # else of this sign-in step is pending in it).
            unit_of_work.rollback()
            raise TotpError(_l("An authenticator is already set up. Remove it first.")) \
                from None
    # Only an unconfirmed credential (a set-up started and left) is replaced:
    # of two sign-ins confirming at once, one wins.
    elif db.session.execute(update(TotpCredential).where(
            TotpCredential.id == item.id, TotpCredential.confirmed_at.is_(None))
            .values(**values)).rowcount != 1:
        raise TotpError(_l("An authenticator is already set up. Remove it first."))
    throttle.note_success(rt.store, limits, key, ip, device)
    return _enrolled(rt, account, now, ip)


def verify_totp(rt: Runtime, account: Account, code: str, ip: str | None,
                device: str | None = None) -> bool:
    """Check a login or step-up code against the confirmed credential.

    :param device: as for :func:`confirm_enrolment`.
    :raises throttle.ThrottledError: the attempt must wait.
    """
    item = credential(account)
    if item is None or item.confirmed_at is None:
        return False
    return _check(rt, account, item, code, ip, device)


def use_recovery_code(rt: Runtime, account: Account, code: str, ip: str | None,
                      device: str | None = None) -> bool:
    """Spend one recovery code (dashes, spaces and case ignored). Not committed.
    Counted with the TOTP codes.

    :param device: as for :func:`confirm_enrolment`.
    :raises throttle.ThrottledError: the attempt must wait.
    """
    limits = rt.settings["throttle"]
    key = f"totp:{account.id}"
    throttle.reserve_attempt(rt.store, limits, key, ip, device)
    raw = "".join(c for c in (code or "").lower() if c.isalnum())
    spent = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None),
               RecoveryCode.code_hash == keyed_hash(rt.token_hmac_key, raw, RECOVERY_PURPOSE))
        .values(used_at=utcnow())).rowcount == 1
    if spent:
        throttle.note_success(rt.store, limits, key, ip, device)
        record("totp.recovery_code_used", account_id=account.id, ip=ip)
    return spent


def remaining_recovery_codes(account: Account) -> int:
    """How many unused recovery codes the account has."""
    return len(db.session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None))).all())


def regenerate_recovery_codes(rt: Runtime, account: Account, ip: str | None) -> list[str]:
    """Replace every recovery code with new ones. The caller has checked a
    live re-authentication (password and the authenticator or a recovery
    code). Not committed; after the caller's commit it tells the verified
    phone (template ``recovery_codes_replaced``).

    :returns: the new recovery codes in clear, to show once.
    :raises TotpError: no confirmed credential.
    """
    item = credential(account)
    if item is None or item.confirmed_at is None:
        raise TotpError(_l("Set up an authenticator first."))
    codes = _new_recovery_codes(rt, account)
    record("totp.recovery_codes_regenerated", account_id=account.id, ip=ip)
    notify_after_commit(rt, account, "recovery_codes_replaced")
    return codes


def _delete(account: Account) -> bool:
    """Delete the account's credential (confirmed or not) and recovery codes
    (not committed); True when a confirmed credential or a recovery code
    was among them."""
    item = credential(account)
    had = item is not None and item.confirmed_at is not None
    codes = db.session.execute(
        delete(RecoveryCode).where(RecoveryCode.account_id == account.id)).rowcount
    if item is not None:
        db.session.delete(item)
    return had or codes > 0


def disable(rt: Runtime, account: Account, ip: str | None) -> None:
    """Remove the credential and its recovery codes. The caller has checked a
    live re-authentication (password and the authenticator or a recovery
    code, so a lost device can be replaced after signing in with a recovery
    code). Not committed; after the caller's commit it tells the verified
    phone (template ``authenticator_removed``).

    :raises TotpError: an operator's credential (they must keep one), or none set up.
    """
    if account.is_admin:
        raise TotpError(_l("Administrators must keep a second factor."))
    if not has_totp(account):
        raise TotpError(_l("No authenticator is set up."))
    _delete(account)
    record("totp.disabled", account_id=account.id, ip=ip)
    notify_after_commit(rt, account, "authenticator_removed")


def remove(account: Account, operator: str, reason: str) -> bool:
    """An operator removes the credential and recovery codes of a person
    checked in person at a service counter (a lost authenticator and lost
    recovery codes, or an authenticator that is not theirs: NIST SP
    800-63B §6.1.2.3), operators' own too (they set up a new one at their
    next sign-in). Audits ``totp.reset`` with the operator and reason; does
    not commit (the caller ends the sessions in the same transaction).

    :returns: whether there was a confirmed credential or a recovery code.
    """
    removed = _delete(account)
    record("totp.reset", account_id=account.id, actor=operator, reason=reason,
           removed=removed)
    return removed

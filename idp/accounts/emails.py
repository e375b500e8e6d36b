"""An account's e-mail address, proven by a link sent to it (so the
``email_verified`` claim, OIDC Core §5.1, can be true).

A request sends a single-use link to the address; the address changes only
when the link is confirmed, until then the account keeps its old one. The
link's random token (256 bits) is the proof, so the link works in any
browser, but it changes only the account it was made for, and only by a
confirming POST: mail scanners that open links change nothing. The store
keeps the token only as a keyed hash, and the address only encrypted
(idp.accounts.pii). A newer link replaces the older one; ending the
account's sessions (password reset, phone change, suspension) voids it.

Typing a new address needs the account's password: the address is not a
login credential here (no reset goes by e-mail), but relying parties may
match their users by a verified address, so a session alone (a kiosk card
read, an SMS sign-in) must not be able to point it at another mailbox.
Verifying the address the account already has needs no password.

Sends are limited per account (a wait, and a daily count), per address
and per client IP (the same rules as SMS codes), so nobody can use the
provider to flood a mailbox.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from connectors.mail import MailGatewayError
from idp.accounts import service as accounts
from idp.accounts.models import Account
from idp.accounts.notify import notify_after_commit
from idp.accounts.recovery import sms_reset_hold_until
from idp.audit.service import record, record_deferred
from idp.i18n import LocalTime
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token
from idp.timeutil import epoch, from_epoch
from idp.unit_of_work import after_commit

log = logging.getLogger(__name__)

#: Kind of the encrypted address in the store (associated data, idp.accounts.pii).
PII_KIND = "email"
#: Path of the confirmation page under the issuer.
CONFIRM_PATH = "/account/email/confirm/"
#: A link's token: base64url of 32 random bytes.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_LINK_PURPOSE = "email_link"

SUBJECT = _l("Confirm your e-mail address")
TEXT = _l("Hello,\n\nto make %(address)s the e-mail address of the provincial government "
          "services account %(username)s, open this link within %(hours)d hours and press "
          "Confirm:\n\n%(link)s\n\nIf you did not ask for this, ignore this message: nothing "
          "changes.\n")
CHANGED_SUBJECT = _l("Your e-mail address was changed")
CHANGED_TEXT = _l("Hello,\n\nthe e-mail address of the provincial government services account "
                  "%(username)s is now %(address)s, no longer this one. If you did not make "
                  "this change, sign in and change your password, or call the help desk.\n")


class EmailUnavailableError(Exception):
    """No mail relay is configured, or it did not take the message."""


class EmailThrottledError(Exception):
    """Another link cannot be sent yet; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class EmailLinkError(Exception):
    """The link is unknown, expired, used, replaced by a newer one, or its
    account's sessions were ended since it was sent."""


@dataclass(frozen=True)
class PendingEmail:
    """A link that was sent and not yet confirmed.

    :ivar address: where it went.
    :ivar expires_at: Unix time after which it no longer works.
    """

    address: str
    expires_at: int


@dataclass(frozen=True)
class EmailLink:
    """What a valid link would confirm: ``address`` for ``account``."""

    account: Account
    address: str


def mask_email(address: str) -> str:
    """``l***@example.test``: for the audit trail and notices."""
    local, _at, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _link_key(rt: Runtime, token: str) -> str:
    return "email:link:" + keyed_hash(rt.token_hmac_key, token, _LINK_PURPOSE)


def _pending_key(account_id: int) -> str:
    return f"email:pending:{account_id}"


def _stored_form(address: str | None) -> str | None:
    """``address`` (an account's) in the form :func:`accounts.normalize_email`
    gives, or as it is when it is not valid (stored before that rule)."""
    if not address:
        return None
    try:
        return accounts.normalize_email(address)
    except accounts.AccountError:
        return address


def needs_password(account: Account, address: str | None) -> bool:
    """Whether sending a link to ``address`` (normalised by
    :func:`accounts.normalize_email`) needs the account's password: for any
    address but exactly the one the account has, normalised the same way
    (the domain's case aside, another spelling is another mailbox: no case
    or Unicode folding of the local part, no ``ß``/``ss``), and only when
    the account has a password at all."""
    return bool(account.password_hash) and address != _stored_form(account.email)


def pending_email(rt: Runtime, account: Account) -> PendingEmail | None:
    """The link last sent for ``account`` and not confirmed, if still valid."""
    entry = rt.store.get(_pending_key(account.id))
    if entry is None or rt.store.get(entry["link"]) is None:
        return None
    return PendingEmail(rt.pii.decrypt(PII_KIND, entry["address"]), entry["expires_at"])


def _count_send(rt: Runtime, account: Account, address: str, ip: str | None) -> None:
    """Apply the send limits (:mod:`idp.accounts.emails`); counts this send.

    :raises EmailThrottledError: a limit is reached (nothing is counted for
        the wait; the counters that passed keep this send).
    """
    limits = rt.settings["mail"]
    waiting = rt.store.ttl(f"email:wait:{account.id}")
    if waiting:
        raise EmailThrottledError(waiting)
    counters = [(f"email:ip:{ip}", 3600, limits["per_ip_hourly"])] if ip else []
    counters += [(f"email:day:{account.id}", 86400, limits["per_account_daily"]),
                 ("email:to:" + rt.pii.blind_index(PII_KIND, address.casefold()), 86400,
                  limits["per_address_daily"])]
    for key, window, limit in counters:
        if rt.store.incr(key, window) > limit:
            raise EmailThrottledError(rt.store.ttl(key) or window)
    rt.store.put(f"email:wait:{account.id}", {"n": 1}, limits["resend_after"])


def send_verification_link(rt: Runtime, account: Account, raw_address: str, ip: str | None,
                           confirm_password: Callable[[], None]) -> PendingEmail:
    """Send a single-use link that makes ``raw_address`` the account's
    verified e-mail address once confirmed (:func:`confirm_link`). The
    account keeps its address until then; an older link stops working.

    :param confirm_password: checks the password the person typed, throttled
        like a login (the login methods' rule, which this module does not
        import: :func:`idp.authn.service.confirm_password` with the browser's
        device cookie); called when :func:`needs_password` says so, after
        the address was checked, and raises what that check raises.
    :returns: the pending change.
    :raises accounts.AccountError: on field ``email`` (malformed, already
        the verified address, or another address while the account is held
        after a password reset by SMS code,
        :func:`idp.accounts.recovery.sms_reset_hold_until`).
    :raises idp.authn.service.LoginFailedError: wrong password.
    :raises idp.authn.throttle.ThrottledError: too many wrong passwords.
    :raises EmailThrottledError: a send limit is reached.
    :raises EmailUnavailableError: no relay configured, or it refused the
        message (the link is then void, the send still counts).
    """
    if rt.mail is None:
        raise EmailUnavailableError("no mail relay is configured (mail.host)")
    address = accounts.normalize_email(raw_address)
    if account.email_verified and address == _stored_form(account.email):
        raise accounts.AccountError("email", _l("This is already your verified e-mail address."))
    if address != _stored_form(account.email):
        # A phone thief who reset the password by SMS code knows it: the
        # password proves only the phone for a while (docs/recovery.md).
        held = sms_reset_hold_until(rt, account)
        if held is not None:
            raise accounts.AccountError("email", _l(
                "Your password was reset by a text message, which proves only the phone: "
                "until %(until)s your e-mail address cannot be changed, only the current one "
                "verified. If you need it sooner, visit a service counter with your ID card.",
                until=LocalTime(from_epoch(held))))
    if needs_password(account, address):
        confirm_password()
    _count_send(rt, account, address, ip)
    ttl = rt.settings["mail"]["verification_ttl"]
    token = random_token(32)
    link_key = _link_key(rt, token)
    encrypted = rt.pii.encrypt(PII_KIND, address)
    previous = rt.store.get(_pending_key(account.id))
    if previous is not None:
        rt.store.delete(previous["link"])
    pending = PendingEmail(address, epoch() + ttl)
    rt.store.put(link_key, {"account": account.id, "address": encrypted,
                            "generation": account.session_generation}, ttl)
    rt.store.put(_pending_key(account.id), {"link": link_key, "address": encrypted,
                                            "expires_at": pending.expires_at}, ttl)
    text = str(TEXT) % {"address": address, "username": account.username,
                        "hours": max(1, ttl // 3600), "link": rt.issuer + CONFIRM_PATH + token}
    try:
        message_id = rt.mail.send(address, str(SUBJECT), text)
    except MailGatewayError as exc:
        rt.store.delete(link_key)
        rt.store.delete(_pending_key(account.id))
        log.warning("e-mail verification link not sent: %s", exc)
        raise EmailUnavailableError(str(exc)) from None
    record_deferred(rt.audit, "email.link_sent", account_id=account.id, ip=ip,
                    address=mask_email(address), message_id=message_id)
    return pending


def _entry(rt: Runtime, token: str, *, take: bool) -> tuple[dict, Account]:
    """The stored link and its account, checked; taken from the store when ``take``.

    :raises EmailLinkError: unknown, expired, used, replaced, or its account
        inactive or its sessions ended since.
    """
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise EmailLinkError("malformed")
    key = _link_key(rt, token)
    entry = rt.store.take(key) if take else rt.store.get(key)
    if entry is None:
        raise EmailLinkError("unknown, expired or used")
    account = accounts.get_account(entry["account"])
    if account is None or not account.is_active:
        raise EmailLinkError("account gone or suspended")
    if entry["generation"] != account.session_generation:
        raise EmailLinkError("the account's sessions were ended since")
    pending = rt.store.get(_pending_key(account.id))
    if pending is None or pending["link"] != key:
        raise EmailLinkError("replaced by a newer link")
    return entry, account


def read_link(rt: Runtime, token: str) -> EmailLink:
    """What the link with ``token`` would confirm; nothing is used up (the
    page a link opens shows this and asks for the confirming POST).

    :raises EmailLinkError: see :func:`confirm_link`.
    """
    entry, account = _entry(rt, token, take=False)
    return EmailLink(account, rt.pii.decrypt(PII_KIND, entry["address"]))


def confirm_link(rt: Runtime, token: str, ip: str | None) -> EmailLink:
    """Make the link's address the verified e-mail address of the account
    the link was made for (whoever is signed in where it is opened) and
    audit it (not committed); the link is used up. Once the caller commits,
    the verified phone is told, and so is the previous address if it was
    verified (best effort).

    :raises EmailLinkError: the link is unknown, expired, already used,
        replaced by a newer one, or its account was suspended or had its
        sessions ended since it was sent.
    """
    entry, account = _entry(rt, token, take=True)
    rt.store.delete(_pending_key(account.id))
    address = rt.pii.decrypt(PII_KIND, entry["address"])
    previous = account.email if account.email_verified and account.email != address else None
    changed = account.email != address
    account.email = address
    account.email_verified = True
    record("account.email_verified", account_id=account.id, ip=ip,
           address=mask_email(address), changed=changed)
    if changed:
        notify_after_commit(rt, account, "email_changed", {"address": mask_email(address)})
    if previous is not None and rt.mail is not None:
        after_commit(functools.partial(_tell_previous_address, rt, previous,
                                       account.username, mask_email(address)))
    return EmailLink(account, address)


def _tell_previous_address(rt: Runtime, previous: str, username: str, masked: str) -> None:
    """Tell the previously verified address ``previous`` that the account's
    address changed to ``masked`` (best effort: a failure is logged)."""
    try:
        rt.mail.send(previous, str(CHANGED_SUBJECT), str(CHANGED_TEXT) % {
            "username": username, "address": masked})
    except (MailGatewayError, ValueError) as exc:
        log.warning("could not tell the previous e-mail address: %s", exc)

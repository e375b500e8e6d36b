"""The interaction: an authorization request saved while the user logs in,
steps up or consents, kept in the store and bound to one browser, and the
verbs the login and consent pages end it with.

The authorization endpoint starts an interaction when it cannot answer at
once (:func:`start`) and resumes it after each page (``/authorize/resume``,
which runs every check again). A page records what happened with a verb:
:func:`login_finished`, :func:`consent_given`, :func:`consent_refused`, or
:func:`ended_with_error`; it never edits the saved request itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from authlib.oauth2.rfc6749.errors import AccessDeniedError, OAuth2Error

from idp.accounts.pii import PiiCipher, PiiError
from idp.authorizations.consents import deny_consent, save_consent
from idp.security import constant_time_equals, random_token
from idp.store import Store
from idp.timeutil import epoch

_PREFIX = "interaction:"
TTL = 1800


@dataclass
class Interaction:
    """An authorization request waiting for the user.

    :ivar id: random identifier used in URLs.
    :ivar args: the authorization request parameters, each a list of values.
    :ivar browser: random id of the browser (from its signed cookie) that started it.
    :ivar created: Unix seconds.
    :ivar login_at: ``auth_time`` of a login completed for this request, if any.
    :ivar consented_by: id of the account that approved on the consent
        screen; the approval counts for that account only.
    """

    id: str
    args: dict[str, list[str]]
    browser: str
    created: int
    login_at: int | None = None
    consented_by: int | None = None

    def arg(self, name: str) -> str | None:
        """First value of parameter ``name``, or None."""
        values = self.args.get(name)
        return values[0] if values else None


class TooManyInteractionsError(Exception):
    """The client IP started more sign-in requests than allowed in the window."""


#: Longest ``login_hint`` kept (encrypted) for the login page, characters.
MAX_LOGIN_HINT = 256


def start(store: Store, args: dict[str, list[str]], browser: str, ip: str | None,
          limits: Mapping[str, Any], pii: PiiCipher) -> Interaction:
    """Create and save an interaction for ``args`` started by ``browser``.

    Each one costs store space for :data:`TTL` seconds, so at most
    ``interactions_per_ip`` may be started per ``interaction_window`` per IP.
    A ``login_hint`` is often an identifier (a phone or ID number), so it is
    kept encrypted (read it with :func:`login_hint`); one longer than
    :data:`MAX_LOGIN_HINT` is dropped.

    :param limits: the ``[throttle]`` settings table.
    :param pii: the cipher of personal identifiers.
    :raises TooManyInteractionsError: over the per-IP limit.
    """
    if store.incr(f"rl:interaction:ip:{ip}", limits["interaction_window"]) > \
            limits["interactions_per_ip"]:
        raise TooManyInteractionsError(ip)
    args = dict(args)
    hints = [pii.encrypt("login_hint", v) for v in args.pop("login_hint", [])
             if len(v) <= MAX_LOGIN_HINT]
    if hints:
        args["login_hint"] = hints
    item = Interaction(id=random_token(18), args=args, browser=browser, created=epoch())
    store.put(_PREFIX + item.id, asdict(item), TTL)
    return item


def login_hint(pii: PiiCipher, item: Interaction) -> str | None:
    """The ``login_hint`` of the request, decrypted, or None."""
    sealed = item.arg("login_hint")
    if not sealed:
        return None
    try:
        return pii.decrypt("login_hint", sealed)
    except PiiError:
        return None


def load(store: Store, interaction_id: str | None, browser: str | None) -> Interaction | None:
    """The interaction if it exists and belongs to ``browser``; None otherwise."""
    if not interaction_id or not browser or len(interaction_id) > 64:
        return None
    data = store.get(_PREFIX + interaction_id)
    if data is None or not constant_time_equals(data["browser"], browser):
        return None
    return Interaction(**data)


def _save(store: Store, item: Interaction) -> None:
    """Persist changes to ``item`` for the rest of its lifetime."""
    remaining = item.created + TTL - epoch()
    if remaining > 0:
        store.put(_PREFIX + item.id, asdict(item), remaining)


def finish(store: Store, item: Interaction) -> bool:
    """Take ``item`` out of the store before its authorization response is
    sent; of two concurrent resumes only one gets True, so one approval
    yields one code."""
    return store.take(_PREFIX + item.id) is not None


def answer_uri(item: Interaction, client) -> str | None:
    """Where the answer to ``item`` goes: its ``redirect_uri``, else the
    client's only registered one, if the client's registration has it now;
    None without a client, or when the URI was removed from the
    registration while the request waited (an operator's ``idp clients
    update`` applies at once), so the answer is shown on a page instead of
    sent there (RFC 6749 §4.1.2.1, RFC 9700 §4.11).

    :param client: the requesting client, as ``rt.clients.get`` finds it, or None.
    """
    if client is None:
        return None
    uri = item.arg("redirect_uri") or client.get_default_redirect_uri()
    return uri if uri and client.check_redirect_uri(uri) else None


def login_finished(store: Store, item: Interaction, auth_time: int) -> None:
    """Record that a login (first factor, or with its second) finished for
    ``item`` at ``auth_time`` (Unix seconds, the SSO session's): on resuming,
    ``prompt=login`` and ``max_age`` count it as the fresh login they asked
    for (:func:`idp.oidc.authorize.decide`)."""
    item.login_at = auth_time
    _save(store, item)


def consent_given(store: Store, item: Interaction, account_id: int, client_id: str,
                  scope: str, ip: str | None) -> None:
    """The account approved ``scope`` for the client on the consent page:
    the consent is remembered (:func:`idp.authorizations.consents.save_consent`, which
    audits and commits) and ``item`` counts as approved by ``account_id``
    only, so a later login by someone else is asked again.

    :param scope: the space-separated scopes shown on the page.
    :param ip: the client IP address, for the audit trail.
    """
    save_consent(account_id, client_id, scope, ip)
    item.consented_by = account_id
    _save(store, item)


def consent_refused(store: Store, item: Interaction, account_id: int, client,
                    ip: str | None) -> OAuth2Error:
    """The account refused the client's request on the consent page: audited
    (:func:`idp.authorizations.consents.deny_consent`, which commits), and the request
    ends with ``access_denied`` (RFC 6749 §4.1.2.1).

    :param client: the requesting client, as ``rt.clients.get`` finds it.
    :returns: the error to send, as :func:`ended_with_error` gives it.
    """
    deny_consent(account_id, client.client_id, ip)
    return ended_with_error(store, item, client, AccessDeniedError)


def ended_with_error(store: Store, item: Interaction, client,
                     error_class: type[OAuth2Error]) -> OAuth2Error:
    """End ``item`` with a protocol error instead of a code: it is taken out
    of the store (:func:`finish`), so it cannot be resumed any more.

    :param client: the requesting client, as ``rt.clients.get`` finds it.
    :param error_class: the error to send, such as ``AccessDeniedError`` or
        ``unmet_authentication_requirements``.
    :returns: the error, addressed to :func:`answer_uri`; send it with
        :func:`idp.oidc.responses.interaction_error`.
    """
    finish(store, item)
    return error_class(redirect_uri=answer_uri(item, client))

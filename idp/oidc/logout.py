"""RP-Initiated Logout 1.0 as named checks: check the ``id_token_hint``
(:func:`check_hint`), check the ``post_logout_redirect_uri``
(:func:`check_target`), ask the user unless the request shows it comes from
the session's own relying party (:func:`needs_confirmation`), end the SSO
session (:func:`end`, through :func:`idp.sessions.end`), which notifies the
relying parties (the single-logout hook of :mod:`idp.sessions`, empty until
back-channel logout is built). The view parses, checks CSRF and renders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri

from idp import sessions
from idp.audit.service import record
from idp.clients.cache import ClientInfo
from idp.oidc.subjects import client_sid
from idp.oidc.tokens import InvalidTokenError, verify_id_token_hint
from idp.runtime import Runtime
from idp.sessions import SsoSession


class LogoutRequestError(Exception):
    """The logout request is refused (``invalid_request``, answered 400).

    :ivar description: what is wrong, for the error page.
    """

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class LogoutRequest:
    """A logout request whose parameters passed the checks.

    :ivar client_id: the relying party asking: the hint's audience, else
        the ``client_id`` parameter, else None.
    :ivar client: that client's registration, or None (none named, or unknown).
    :ivar hint_claims: the verified ``id_token_hint``'s claims, or None.
    :ivar target: where to send the browser afterwards: the registered
        ``post_logout_redirect_uri`` with ``state`` added, or None to show
        the provider's own page.
    """

    client_id: str | None
    client: ClientInfo | None
    hint_claims: dict[str, Any] | None
    target: str | None


def check_hint(rt: Runtime, hint: str | None,
               client_id: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Check the ``id_token_hint`` (RP-Initiated Logout 1.0 §2): an ID token
    this provider signed (an expired one too); when given, its audience
    (``aud``, else ``azp``) is the client, and a ``client_id`` parameter
    must name the same one.

    :param hint: the ``id_token_hint`` parameter, or None.
    :param client_id: the ``client_id`` parameter, or None.
    :returns: ``(claims, client_id)``: the hint's claims (None without a
        hint) and the client it names, else ``client_id`` as given.
    :raises LogoutRequestError: the hint is not valid, or names another client.
    """
    if not hint:
        return None, client_id
    try:
        claims = verify_id_token_hint(rt, hint)
    except InvalidTokenError:
        raise LogoutRequestError("The id_token_hint is not valid.") from None
    aud = claims.get("aud")
    hinted = aud if isinstance(aud, str) else claims.get("azp")
    if client_id and client_id != hinted:
        raise LogoutRequestError("client_id does not match the id_token_hint.")
    return claims, hinted


def check_target(client: ClientInfo | None, target: str | None,
                 state: str | None) -> str | None:
    """Check the ``post_logout_redirect_uri`` (RP-Initiated Logout 1.0 §2,
    §3): only a URI registered for the client, compared exactly, so the
    endpoint never redirects elsewhere (no open redirect).

    :param client: the client of the request (:func:`check_hint`), or None.
    :param target: the ``post_logout_redirect_uri`` parameter, or None.
    :param state: the ``state`` parameter, added to the target when given.
    :returns: the target to redirect to, or None when none was asked for.
    :raises LogoutRequestError: the target is not registered for the client
        (or no client is known).
    """
    if not target:
        return None
    if client is None or target not in client.post_logout_redirect_uris:
        raise LogoutRequestError("post_logout_redirect_uri is not registered for this client.")
    return add_params_to_uri(target, [("state", state)]) if state else target


def check_request(rt: Runtime, params: Mapping[str, str]) -> LogoutRequest:
    """Run the checks of a logout request in order: the hint
    (:func:`check_hint`), then the redirect target (:func:`check_target`).

    :param params: the request's parameters (query or form).
    :raises LogoutRequestError: a check failed.
    """
    hint_claims, client_id = check_hint(rt, params.get("id_token_hint"),
                                        params.get("client_id"))
    client = rt.clients.get(client_id) if client_id else None
    target = check_target(client, params.get("post_logout_redirect_uri"), params.get("state"))
    return LogoutRequest(client_id, client, hint_claims, target)


def needs_confirmation(rt: Runtime, logout: LogoutRequest, sso: SsoSession | None,
                       confirmed: bool) -> bool:
    """Whether the user must confirm before the session ends: there is a
    session, the user has not confirmed, and the hint does not carry the
    session's ``sid`` as its client saw it (a pairwise client sees its own,
    :func:`idp.oidc.subjects.client_sid`): a logout link alone, which any
    site can make, must not end someone's session (RP-Initiated Logout 1.0 §6).

    :param sso: the browser's SSO session, or None.
    :param confirmed: the user confirmed (a POST carrying the CSRF token,
        which the caller checked).
    """
    if sso is None or confirmed:
        return False
    return (logout.hint_claims is None
            or logout.hint_claims.get("sid") != client_sid(rt, logout.client, sso.sid))


def end(rt: Runtime, sso: SsoSession, client_id: str | None, ip: str | None) -> None:
    """End the SSO session ``sso`` for every client (the relying parties'
    grants are kept: :func:`idp.sessions.end`) and audit ``logout`` (not
    committed).

    :param client_id: the relying party that asked, if any (for the audit).
    """
    sessions.end(rt, sso, "logout", revoke_grants=False, ip=ip)
    record("logout", account_id=sso.account_id, client_id=client_id, ip=ip, sid=sso.sid)

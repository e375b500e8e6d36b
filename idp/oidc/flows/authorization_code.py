"""The authorization code flow (RFC 6749 §4.1) with PKCE (RFC 7636): codes
are kept in the store hashed and bound to their client, are single use,
and a replay revokes the grant they produced (§10.5).

A code holds its whole grant until it is redeemed: the single sign-on hop
that gives it writes nothing to the database (the authorization is audited
through the deferred writer), and the grant's row is written by the
redemption. What revokes grants in between finds no row, so each such
revocation leaves a store marker before it lists the grants
(``idp.authorizations.service.stop_pending_codes``: the account's, naming
its new session generation; a withdrawn consent's; the client's), and a
replay of the code marks its grant id revoked. The redemption checks them,
and the account's session generation, before it writes the grant, and the
markers again once the row is committed (:func:`_check_after_commit`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.errors import LoginRequiredError

from idp.accounts.models import Account
from idp.accounts.service import get_account
from idp.accounts.snapshots import AccountSnapshot
from idp.audit.service import record_deferred
from idp.authorizations.service import create_grant, revoke_grant, revoked_in_flight
from idp.oidc.authorize import TemporarilyUnavailableError, issue_rate
from idp.oidc.client_auth import TOKEN_AUTH_METHODS
from idp.oidc.flows.user_tokens import issue_user_tokens, wants_refresh
from idp.oidc.responses import response_mode_response
from idp.runtime import Runtime, current_runtime
from idp.security import keyed_hash, random_token
from idp.sessions import SsoSession, add_relying_party
from idp.store import StoreError
from idp.timeutil import utcnow
from idp.unit_of_work import after_commit, unit
from idp.web import client_ip

CODE_PURPOSE = "authorization_code"


@dataclass
class CodeRecord:
    """What an authorization code stands for, kept in the store under its hash.

    Field names follow Authlib's ``AuthorizationCodeMixin`` accessors.
    """

    client_id: str
    redirect_uri: str | None
    scope: str
    account_id: int
    grant_id: str
    #: When the authorization was given, ISO 8601 UTC (the grant's ``created_at``).
    issued_at: str
    #: The account's session generation then (``idp.sessions.end_all``).
    generation: int
    claims: dict | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    nonce: str | None = None
    sid: str | None = None
    auth_time: int = 0
    acr: str | None = None
    amr: list[str] = field(default_factory=list)

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass
class LoginContext:
    """The authenticated end-user handed to the authorization grant.

    :ivar account: the account that authenticated.
    :ivar session: the SSO session the authentication lives in.
    :ivar claims: the parsed ``claims`` request parameter, or None.
    :ivar acr: the ``acr`` this login achieved (idp.oidc.authorize.check_acr).
    :ivar authorized_at: when the request began to be decided, UTC, before
        the account, its session and its consent were read: the time of
        the authorization, which revocations after it are compared with.
    :ivar ip: the browser's address, for the audit trail.
    """

    account: Account | AccountSnapshot
    session: SsoSession
    claims: dict | None = None
    acr: str | None = None
    authorized_at: datetime = field(default_factory=utcnow)
    ip: str | None = None


def _code_key(rt: Runtime, client_id: str, code: str) -> str:
    """Store key of ``code`` issued to ``client_id`` (and, with ``:grant``,
    of its replay marker). The client is part of the key, so a code
    presented by another client finds nothing: it is neither used up nor
    taken for a replay that would revoke its owner's grant (RFC 6749
    §4.1.3: the code must have been issued to the authenticated client;
    §10.5)."""
    return "code:" + keyed_hash(rt.token_hmac_key, f"{client_id}\x00{code}", CODE_PURPOSE)


class S256CodeChallenge(CodeChallenge):
    """PKCE (RFC 7636) with S256 only, as RFC 9700 §2.1.1 recommends; the method
    must be named explicitly because the RFC default is ``plain``."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256", redirect_uri=redirect_uri
            )
        if not data.get("code_challenge") and grant.request.client.is_public:
            raise InvalidRequestError(
                "public clients must use PKCE (code_challenge with S256)",
                redirect_uri=redirect_uri,
            )
        return super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: CodeRecord):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: CodeRecord):
        return authorization_code.code_challenge_method


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """Authorization code grant (RFC 6749 §4.1) with single-use hashed codes
    and replay revocation (§4.1.2, §10.5)."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def create_authorization_response(self, redirect_uri: str, grant_user: LoginContext):
        """Issue the code (:meth:`issue_code`) and answer with the requested
        ``response_mode``.

        :raises TemporarilyUnavailableError: as :meth:`issue_code`.
        """
        return response_mode_response(redirect_uri, self.issue_code(redirect_uri, grant_user),
                                      self.request.payload.data.get("response_mode"))

    def issue_code(self, redirect_uri: str, grant_user: LoginContext) -> list[tuple[str, str]]:
        """Store a new code of the request's authorization and audit it.

        :returns: the response's parameters (RFC 6749 §4.1.2): ``code``,
            ``state`` when the request had one, and ``iss`` (RFC 9207).
        :raises TemporarilyUnavailableError: beyond the session's rate of
            codes (:func:`idp.oidc.authorize.issue_rate`); nothing is stored.
        """
        rt = current_runtime()
        payload = self.request.payload
        scope = self.request.scope if hasattr(self.request, "scope") else payload.scope
        scope = self.request.client.get_allowed_scope(scope)
        session = grant_user.session
        account = grant_user.account
        client_id = self.request.client.client_id
        grant_id = random_token(18)
        code = random_token(32)
        # RFC 6749 §4.1.3: the token request must repeat redirect_uri only if
        # the authorization request carried it.
        record_ = CodeRecord(
            client_id=client_id, redirect_uri=payload.redirect_uri, scope=scope,
            account_id=account.id, grant_id=grant_id,
            issued_at=grant_user.authorized_at.isoformat(),
            generation=account.session_generation or 0, claims=grant_user.claims,
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
            nonce=payload.data.get("nonce"), sid=session.sid, auth_time=session.auth_time,
            acr=grant_user.acr, amr=session.amr,
        )
        # The session's list of clients first (writing it twice is
        # harmless), the code last: a store fault before it leaves no code
        # and no audit event, so a caller may answer the request again
        # (idp.oidc.hop) without a second code and event.
        if not add_relying_party(rt.store, session, client_id):
            # The session ended while this code was made: its single
            # logout did not name this client, so it gets nothing.
            raise LoginRequiredError(redirect_uri=redirect_uri)
        tokens = rt.settings["tokens"]
        key = _code_key(rt, client_id, code)
        # vars(), not asdict(): the store serialises the record at once, so
        # the deep copy asdict() makes of its lists and dicts is waste.
        counter, window, limit = issue_rate(rt, session)
        if rt.store.put_many_counted(counter, window, limit, [
                (key, vars(record_), tokens["authorization_code_ttl"]),
                (key + ":grant", {"grant_id": grant_id}, tokens["code_reuse_window"])]) > limit:
            raise TemporarilyUnavailableError("Too many authorization requests; slow down.",
                                              redirect_uri=redirect_uri)
        record_deferred(rt.audit, "authorization.granted", account_id=account.id,
                        client_id=client_id, ip=grant_user.ip, grant_id=grant_id, scope=scope)
        params = [("code", code)]
        if payload.state:
            params.append(("state", payload.state))
        params.append(("iss", rt.issuer))
        return params

    def query_authorization_code(self, code: str, client) -> CodeRecord | None:
        """Take the code of ``client`` atomically; a replay by that client
        revokes the grant it produced. Another client's code is not found
        (:func:`_code_key`)."""
        rt = current_runtime()
        if not isinstance(code, str) or len(code) > 256:
            return None
        key = _code_key(rt, client.client_id, code)
        data = rt.store.take(key)
        if data is None:
            issued = rt.store.get(key + ":grant")
            if issued is not None:
                revoke_grant(rt, issued["grant_id"], "authorization_code_reuse", client_ip())
            return None
        try:
            return CodeRecord(**data)
        except TypeError:
            # A code given by an older version of the provider, in flight
            # across an upgrade: asking again is all it costs the client.
            return None

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing to do: the code was taken (deleted) when it was read."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Account | None:
        account = get_account(authorization_code.account_id)
        return account if account is not None and account.may_receive_tokens else None

    def create_token_response(self):
        """Issue the tokens of a redeemed code and write its grant. A code
        whose grant was revoked after it was issued (consent withdrawn,
        the account's sessions ended by a password reset or suspension,
        the client's grants revoked...) is ``invalid_grant`` (RFC 6749
        §5.2), as one of a suspended account is: its tokens would be dead
        on arrival, and its ID token would still sign the user in.

        A replay of the code while this redemption runs (case O-9) does not
        fail it: it answers, and its grant is revoked once its row is
        committed (:func:`_check_after_commit`), so the tokens are dead.
        """
        rt = current_runtime()
        code: CodeRecord = self.request.authorization_code
        client = self.request.client
        account = self.authenticate_user(code)
        issued_at = datetime.fromisoformat(code.issued_at)
        if (account is None or (account.session_generation or 0) != code.generation
                or revoked_in_flight(rt, grant_id=code.grant_id, account_id=account.id,
                                     client_id=client.client_id, granted_at=issued_at,
                                     generation=code.generation, replayed=False)):
            raise InvalidGrantError("The authorization code is no longer valid.")
        grant = create_grant(
            rt, grant_id=code.grant_id, created_at=issued_at, account_id=account.id,
            client_id=client.client_id, scope=code.scope, claims=code.claims, sid=code.sid,
            auth_time=code.auth_time, acr=code.acr, amr=code.amr, nonce=code.nonce)
        # Bounded by the registration at redemption too: a scope removed
        # from it while the code was in flight is not issued.
        scope = client.get_allowed_scope(code.scope)
        token = issue_user_tokens(rt, client, grant, account, scope,
                                  wants_refresh(client, scope), code.nonce, ip=client_ip())
        # Plain values: the committed row is not loaded again.
        after_commit(functools.partial(_check_after_commit, rt, grant.id, account.id,
                                       client.client_id, issued_at, code.generation,
                                       client_ip()))
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _check_after_commit(rt: Runtime, grant_id: str, account_id: int, client_id: str,
                        granted_at: datetime, generation: int, ip: str | None) -> None:
    """Once a redemption committed its grant: revoke it if it was revoked
    before its row existed. A revocation lists the live grants after
    writing its marker (``idp.authorizations.service.stop_pending_codes``,
    a replay's mark on the grant id): it either lists this committed row
    and revokes it, or wrote its marker before this reads it (RFC 6749
    §10.5, case O-9). Markers that cannot be read revoke the grant: the
    check fails closed, and the client can ask again.
    """
    try:
        revoked = revoked_in_flight(rt, grant_id=grant_id, account_id=account_id,
                                    client_id=client_id, granted_at=granted_at,
                                    generation=generation, replayed=True)
    except StoreError:
        revoked = True
    if revoked:
        with unit():
            revoke_grant(rt, grant_id, "revoked_while_redeemed", ip)

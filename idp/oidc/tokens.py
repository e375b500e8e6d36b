"""JWTs the provider issues and accepts: access tokens (RFC 9068), ID tokens
(OpenID Connect Core §2), and checks on tokens presented back to it."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from joserfc.util import json_b64encode, urlsafe_b64encode

from idp.accounts.snapshots import AccountSnapshot
from idp.authorizations.cache import GrantFacts
from idp.authorizations.service import REVOKED_CLIENT_GRANTS, REVOKED_GRANT, revoked_since
from idp.oidc.keys import UnsupportedAlgorithmError
from idp.runtime import Runtime
from idp.security import random_token
from idp.timeutil import epoch

#: Digest used for at_hash/c_hash per signing algorithm (OIDC Core §3.1.3.6:
#: the hash algorithm of the JWS alg; EdDSA with Ed25519 uses SHA-512).
HASH_FOR_ALG = {
    "ES256": hashlib.sha256, "RS256": hashlib.sha256, "PS256": hashlib.sha256,
    "ES384": hashlib.sha384, "RS384": hashlib.sha384, "PS384": hashlib.sha384,
    "ES512": hashlib.sha512, "RS512": hashlib.sha512, "PS512": hashlib.sha512,
    "EdDSA": hashlib.sha512,
}
#: Asymmetric algorithms the provider accepts on tokens it verifies. ``none``
#: and HMAC algorithms are never accepted (RFC 8725 §3.1, §3.2).
ACCEPTED_ALGS = ("ES256", "ES384", "RS256", "RS512", "EdDSA")
REVOKED_JTI = "revoked:jti:"


# RFC 9864 deprecates the polymorphic "EdDSA" name in favour of "Ed25519",
# but relying-party libraries still only know "EdDSA", so it stays offered.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)


class InvalidTokenError(Exception):
    """A presented token is malformed, unsigned by us, expired or revoked.

    :ivar client_id: the client an access token this provider signed was
        issued to (its signature makes the claim trustworthy even when the
        token is expired or revoked), else None; it decides CORS on the
        error answer.
    """

    def __init__(self, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.client_id = client_id


def half_hash(value: str, alg: str) -> str:
    """Left half of the digest of ``value`` under ``alg``'s hash, base64url
    (OIDC Core §3.1.3.6 at_hash, §3.3.2.11 c_hash).

    :raises UnsupportedAlgorithmError: for an algorithm with no known hash; the
        claim is never silently skipped.
    """
    if alg not in HASH_FOR_ALG:
        raise UnsupportedAlgorithmError(alg)
    digest = HASH_FOR_ALG[alg](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


def _add_present(claims: dict[str, Any], **optional: Any) -> None:
    """Add the optional claims that have a value; absent claims are left out,
    never sent as null or empty (RFC 7519 §4)."""
    claims.update({name: value for name, value in optional.items() if value})


#: The algorithms the provider signs with, through joserfc's implementations.
_SIGNING = JWSRegistry(algorithms=list(HASH_FOR_ALG))
#: Encoded protected headers by (alg, kid, typ): the same few for every token.
_HEADERS: dict[tuple[str, str, str], bytes] = {}


def _sign(rt: Runtime, alg: str, claims: dict[str, Any], typ: str | None) -> str:
    """A JWS compact serialization (RFC 7515 §7.1) of ``claims`` signed with
    the active key for ``alg``, encoded as joserfc's ``jwt.encode`` does
    (``typ`` ``JWT`` unless given), with the header segment of the key
    prepared once and the signature made by joserfc's algorithm."""
    key = rt.keys.signing_key(alg)
    typ = typ or "JWT"
    header = _HEADERS.get((alg, key.kid, typ))
    if header is None:
        header = _HEADERS[(alg, key.kid, typ)] = json_b64encode(
            {"typ": typ, "alg": alg, "kid": key.kid})
    payload = urlsafe_b64encode(
        json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode())
    signing_input = header + b"." + payload
    signature = urlsafe_b64encode(_SIGNING.get_alg(alg).sign(signing_input, key.key))
    return (signing_input + b"." + signature).decode("ascii")


def issue_access_token(
    rt: Runtime,
    *,
    client_id: str,
    scope: str,
    subject: str | None,
    grant_id: str | None = None,
    auth_time: int | None = None,
    acr: str | None = None,
    amr: list[str] | None = None,
    sid: str | None = None,
) -> tuple[str, int]:
    """Sign a JWT access token per RFC 9068 §2 (header ``typ: at+jwt``) with
    the provider-wide ``tokens.access_token_signing_alg``: access tokens are
    read by resource servers and by this provider, never by the client, so
    the client's ID-token algorithm does not apply (RFC 9068 §4 leaves the
    choice to the authorization server).

    :param subject: the account's ``sub``; for client_credentials the client_id.
    :param grant_id: the grant the token derives from (``gid``), for revocation.
    :returns: ``(token, expires_in)`` with ``expires_in`` in seconds.
    """
    ttl = rt.settings["tokens"]["access_token_ttl"]
    now = epoch()
    claims: dict[str, Any] = {
        "iss": rt.issuer,
        "sub": subject or client_id,
        "aud": rt.settings["tokens"]["access_token_audience"] or rt.issuer,
        "client_id": client_id,
        "iat": now,
        "exp": now + ttl,
        "jti": random_token(16),
        "scope": scope,
    }
    _add_present(claims, gid=grant_id, acr=acr, amr=amr, sid=sid,
                 auth_time=None if auth_time is None else int(auth_time))
    return _sign(rt, rt.settings["tokens"]["access_token_signing_alg"], claims, "at+jwt"), ttl


def issue_id_token(
    rt: Runtime,
    *,
    client_id: str,
    alg: str,
    subject: str,
    auth_time: int,
    nonce: str | None,
    acr: str | None,
    amr: list[str] | None,
    sid: str | None,
    access_token: str | None,
    extra_claims: dict[str, Any],
) -> str:
    """Sign an ID token (OIDC Core §2, §3.1.3.6).

    ``aud`` is the single string ``client_id`` (so no ``azp`` is needed,
    §2); ``auth_time`` is always the time of the authentication itself.

    :param extra_claims: user claims to include (already filtered by scope and
        the ``claims`` request); they cannot override protocol claims.
    """
    now = epoch()
    claims: dict[str, Any] = dict(extra_claims)
    claims.update({
        "iss": rt.issuer,
        "sub": subject,
        "aud": client_id,
        "iat": now,
        "exp": now + rt.settings["tokens"]["id_token_ttl"],
        "auth_time": int(auth_time),
    })
    _add_present(claims, nonce=nonce, acr=acr, amr=amr, sid=sid)
    if access_token:
        claims["at_hash"] = half_hash(access_token, alg)
    return _sign(rt, alg, claims, None)


#: The ``events`` member of a logout token (Back-Channel Logout 1.0 §2.4).
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def issue_logout_token(rt: Runtime, *, client_id: str, alg: str, subject: str | None,
                       sid: str | None) -> str:
    """Sign a logout token (OpenID Connect Back-Channel Logout 1.0 §2.4):
    ``typ`` ``logout+jwt`` (§2.4, RFC 8725 §3.11), signed like the client's
    ID tokens, with ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``events``
    and ``sub`` and/or ``sid``; never a ``nonce`` (§2.4, so that it can
    never pass for an ID token). It lives ``tokens.logout_token_ttl``
    seconds (two minutes by default), the window §2.6 lets a relying party
    keep ``jti`` values for.

    :raises ValueError: neither ``subject`` nor ``sid`` (§2.4 needs one).
    """
    if subject is None and sid is None:
        raise ValueError("a logout token names a subject, a session or both")
    now = epoch()
    claims: dict[str, Any] = {
        "iss": rt.issuer, "aud": client_id, "iat": now,
        "exp": now + rt.settings["tokens"]["logout_token_ttl"], "jti": random_token(16),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    _add_present(claims, sub=subject, sid=sid)
    return _sign(rt, alg, claims, "logout+jwt")


class VerifiedTokens:
    """JWTs whose signature this process verified, with the key set that
    verified them: a token presented again (a portal calls userinfo with
    the same access token on every page view) skips the signature check,
    and only while the same key set is in use, so a key leaving the JWKS
    stops its tokens here at once. Expiry, revocation and everything else
    is checked on every use. Only tokens that verified are kept, so the
    memo holds nothing an outsider can put there; at most ``size`` of them.
    Safe across threads.

    :param size: most tokens kept; the oldest goes first.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[object, jwt.Token]] = {}

    def get(self, token: str, keys: object) -> jwt.Token | None:
        """The decoded ``token`` if it was verified with ``keys``, else None."""
        entry = self._entries.get(token)
        return entry[1] if entry is not None and entry[0] is keys else None

    def put(self, token: str, keys: object, decoded: jwt.Token) -> None:
        """Remember that ``token`` verified with ``keys`` as ``decoded``."""
        with self._lock:
            while len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token] = (keys, decoded)


_VERIFIED = VerifiedTokens()


def _decode(rt: Runtime, token: str, *, memo: VerifiedTokens | None = None) -> jwt.Token:
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        raise InvalidTokenError("malformed token")
    keys = rt.keys.public_keys()
    if memo is not None and (known := memo.get(token, keys)) is not None:
        return known
    try:
        decoded = jwt.decode(token, keys, algorithms=list(ACCEPTED_ALGS))
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise InvalidTokenError("token signature or format is invalid") from exc
    if memo is not None:
        memo.put(token, keys, decoded)
    return decoded


@dataclass(frozen=True)
class AccessToken:
    """An access token this provider issued, verified and live.

    :ivar claims: the token's claims, but ``scope`` is what the token is
        still good for: its scope limited to what the client's registration
        allows now, so a scope removed from it is released by no token
        issued before.
    :ivar grant: the grant the token derives from (``gid``); None for a
        client's own token (client_credentials).
    :ivar account: the account of that grant, as a snapshot; None without a grant.
    """

    claims: dict[str, Any]
    grant: GrantFacts | None
    account: AccountSnapshot | None


def check_access_token(rt: Runtime, token: str) -> AccessToken:
    """Verify an access token this provider issued and that it is still live.

    Checks the signature against our published keys with an asymmetric
    algorithm only, ``typ`` (RFC 9068 §4), ``iss``, ``exp``; the client it
    was issued to must still be registered (a removed client's tokens stop
    at once, client_credentials ones included), and the token must not be
    older than that registration: a client deleted and registered again
    under the same ``client_id`` does not revive the old registration's
    tokens. ``iat`` has whole seconds, so a token of the second the client
    was registered in counts as the new registration's.

    A token of a user grant (``gid``) is live only while the grant exists
    and is not revoked, and its account may receive tokens (suspension and
    re-verification stop it). The revocation markers of the token (by
    ``jti``), of its grant, of all its client's grants, and the account's
    version (:mod:`idp.accounts.snapshots`) are read in one store round
    trip; the grant and the account come from the process's caches.

    :returns: the verified :class:`AccessToken`.
    :raises InvalidTokenError: on any failure.
    :raises StoreError: the store cannot be read (revocation cannot be
        checked, so the caller fails closed).
    """
    decoded = _decode(rt, token, memo=_VERIFIED)
    if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        raise InvalidTokenError("not an access token")
    claims = decoded.claims
    client_id = claims.get("client_id") if isinstance(claims.get("client_id"), str) else None
    registry = JWTClaimsRegistry(
        leeway=0, iss={"essential": True, "value": rt.issuer},
        exp={"essential": True}, jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise InvalidTokenError("token is expired or not issued here", client_id) from exc
    gid = claims.get("gid")
    grant = rt.grants.get(gid) if isinstance(gid, str) and gid else None
    if gid and (grant is None or grant.revoked or grant.client_id != client_id):
        raise InvalidTokenError("no live grant behind the token", client_id)
    # One store round trip: the token's, the grant's and the client's
    # revocation markers, the account's version and the clients' generation.
    keys = [REVOKED_JTI + claims["jti"]]
    if grant is not None:
        keys += [REVOKED_GRANT + grant.id, REVOKED_CLIENT_GRANTS + grant.client_id,
                 rt.accounts.version_key(grant.account_id)]
    generation_key = rt.clients.unchecked_generation_key()
    markers = rt.store.get_many([*keys, generation_key] if generation_key else keys)
    if generation_key:
        rt.clients.follow(markers[-1])
    client = rt.clients.get(client_id) if client_id is not None else None
    if client is None:
        raise InvalidTokenError("the client is no longer registered", client_id)
    # The registration's time comes from the cached client: no store or
    # database round trip per token.
    iat = claims.get("iat")
    if not isinstance(iat, int) or iat < client.created_at:
        raise InvalidTokenError("the token was issued before the client's registration",
                                client_id)
    if markers[0] is not None:
        raise InvalidTokenError("token is revoked", client_id)
    account = None
    if grant is not None:
        if markers[1] is not None or revoked_since(markers[2], grant.created_at):
            raise InvalidTokenError("token is revoked", client_id)
        account = rt.accounts.get(grant.account_id, markers[3])
        if account is None or not account.may_receive_tokens:
            raise InvalidTokenError("the account may no longer receive tokens", client_id)
    return AccessToken({**claims, "scope": client.get_allowed_scope(claims.get("scope", ""))},
                       grant, account)


def verify_id_token_hint(rt: Runtime, token: str) -> dict[str, Any]:
    """Verify an ``id_token_hint`` (OIDC Core §3.1.2.1; RP-Initiated Logout §2).

    The signature and issuer must be ours; an expired hint is still accepted,
    as the specifications allow.

    :raises InvalidTokenError: if it is not an ID token we signed.
    """
    decoded = _decode(rt, token)
    if decoded.header.get("typ") not in (None, "JWT"):
        raise InvalidTokenError("not an ID token")
    claims = decoded.claims
    if claims.get("iss") != rt.issuer or not isinstance(claims.get("sub"), str):
        raise InvalidTokenError("ID token not issued here")
    return claims


def sole_audience(aud: object) -> str | None:
    """The one audience of a JWT addressed to the provider, or None.

    ``aud`` must name a single recipient: a string, or an array holding one
    string (RFC 7519 §4.1.3 makes the two equivalent). An array naming
    others too is refused (None) even when the provider is among them: every
    other recipient could replay the same JWT here (draft-ietf-oauth-rfc7523bis
    §4, after the audience injection attacks on RFC 7523 §3).

    :param aud: the ``aud`` claim as decoded.
    """
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else None


def revoke_access_token(rt: Runtime, claims: dict[str, Any]) -> None:
    """Mark one access token revoked until it would have expired anyway."""
    remaining = int(claims.get("exp", 0)) - epoch()
    if remaining > 0:
        rt.store.put(REVOKED_JTI + claims["jti"], {"at": epoch()}, remaining + 1)

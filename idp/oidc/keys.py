"""Signing keys: creation, encrypted storage, rotation with overlap, the JWKS.

RFC 7517 (JWK), RFC 7518 §3.1 (algorithms), OpenID Connect Core §10.1.1 (rotation:
a retired key stays published until every token signed with it has expired).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from sqlalchemy import select

from idp.extensions import db
from idp.oidc.models import SigningKey
from idp.security import decrypt, encrypt
from idp.timeutil import utcnow
from idp.unit_of_work import after_commit

#: How each algorithm's key is generated.
_GENERATORS = {
    "ES256": lambda: ECKey.generate_key("P-256", private=True),
    "ES384": lambda: ECKey.generate_key("P-384", private=True),
    "RS256": lambda: RSAKey.generate_key(2048, private=True),
    "RS512": lambda: RSAKey.generate_key(2048, private=True),
    "EdDSA": lambda: OKPKey.generate_key("Ed25519", private=True),
}
_IMPORTERS = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}


class UnsupportedAlgorithmError(Exception):
    """The requested JWS algorithm is not one the provider signs with."""


@dataclass(frozen=True)
class ActiveKey:
    """A private signing key ready for use.

    :ivar kid: key id (RFC 7638 thumbprint).
    :ivar alg: JWS algorithm.
    :ivar key: the joserfc private key.
    """

    kid: str
    alg: str
    key: ECKey | RSAKey | OKPKey


@dataclass(frozen=True)
class _Snapshot:
    loaded_at: float
    active: dict[str, ActiveKey]
    public: KeySet
    jwks_body: bytes
    etag: str


class KeyRing:
    """Signing keys of the provider, cached per process.

    :param kek: 32-byte key-encryption key for private JWKs.
    :param publish_seconds: how long a retired key stays in the JWKS.
    :param cache_seconds: how long a process trusts its cached copy.
    """

    def __init__(self, kek: bytes, publish_seconds: int, cache_seconds: int) -> None:
        self._kek = kek
        self._publish = publish_seconds
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        # kid -> (public key, private key or None), imported once: a kid is
        # the thumbprint of its key, so its row never holds another one.
        # Importing an RSA private key checks it, tens of milliseconds of
        # CPU that every reload of the snapshot would otherwise spend again.
        self._imported: dict[str, tuple[ECKey | RSAKey | OKPKey,
                                        ECKey | RSAKey | OKPKey | None]] = {}

    def _create(self, alg: str) -> SigningKey:
        if alg not in _GENERATORS:
            raise UnsupportedAlgorithmError(alg)
        key = _GENERATORS[alg]()
        kid = key.thumbprint()
        public = dict(key.as_dict(private=False), kid=kid, alg=alg, use="sig")
        private = json.dumps(key.as_dict(private=True)).encode()
        row = SigningKey(
            kid=kid, alg=alg, public_jwk=public,
            private_jwk=encrypt(self._kek, private, kid.encode()),
        )
        db.session.add(row)
        return row

    def ensure(self, algs: tuple[str, ...]) -> None:
        """Create an active key for each algorithm in ``algs`` that has none
        (not committed; the cache is dropped after the caller's commit)."""
        existing = set(
            db.session.scalars(select(SigningKey.alg).where(SigningKey.retired_at.is_(None)))
        )
        missing = [alg for alg in algs if alg not in existing]
        for alg in missing:
            self._create(alg)
        if missing:
            after_commit(self.invalidate)

    def rotate(self, algs: tuple[str, ...] | None = None) -> list[SigningKey]:
        """Introduce a new key for each algorithm (default: every algorithm in use)
        and retire the previous one, which stays published for ``publish_seconds``.

        :returns: the new keys (not committed; the cache is dropped after
            the caller's commit).
        """
        current = list(db.session.scalars(
            select(SigningKey).where(SigningKey.retired_at.is_(None))))
        targets = algs or tuple(sorted({row.alg for row in current})) or ("ES256",)
        now = utcnow()
        for row in current:
            if row.alg in targets:
                row.retired_at = now
        new = [self._create(alg) for alg in targets]
        after_commit(self.invalidate)
        return new

    def invalidate(self) -> None:
        """Forget the cached keys in this process."""
        with self._lock:
            self._snapshot = None

    def _load(self) -> _Snapshot:
        snap = self._snapshot
        if snap is not None and time.monotonic() - snap.loaded_at < self._cache_seconds:
            return snap
        with self._lock:
            # Another thread may have reloaded while this one waited.
            snap = self._snapshot
            if snap is not None and time.monotonic() - snap.loaded_at < self._cache_seconds:
                return snap
            cutoff = utcnow() - timedelta(seconds=self._publish)
            rows = list(db.session.scalars(
                select(SigningKey)
                .where((SigningKey.retired_at.is_(None)) | (SigningKey.retired_at > cutoff))
                .order_by(SigningKey.created_at)
            ))
            active: dict[str, ActiveKey] = {}
            public = []
            imported = {}
            for row in rows:
                public_key, private_key = self._imported.get(row.kid, (None, None))
                if public_key is None:
                    public_key = _IMPORTERS[row.public_jwk["kty"]].import_key(row.public_jwk)
                if row.retired_at is None and private_key is None:
                    private = json.loads(decrypt(self._kek, row.private_jwk, row.kid.encode()))
                    private_key = _IMPORTERS[private["kty"]].import_key(private)
                imported[row.kid] = (public_key, private_key)
                public.append(public_key)
                if row.retired_at is None:
                    active[row.alg] = ActiveKey(kid=row.kid, alg=row.alg, key=private_key)
            self._imported = imported
            body = json.dumps(
                {"keys": [row.public_jwk for row in rows]}, separators=(",", ":")
            ).encode()
            snap = _Snapshot(
                loaded_at=time.monotonic(), active=active, public=KeySet(public),
                jwks_body=body, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            )
            self._snapshot = snap
            return snap

    def signing_key(self, alg: str) -> ActiveKey:
        """The active private key for ``alg``.

        :raises UnsupportedAlgorithmError: if the provider has no key for ``alg``.
        """
        snap = self._load()
        if alg not in snap.active:
            self.invalidate()
            snap = self._load()
            if alg not in snap.active:
                raise UnsupportedAlgorithmError(alg)
        return snap.active[alg]

    def public_keys(self) -> KeySet:
        """Every published public key (active and recently retired)."""
        return self._load().public

    def jwks(self) -> tuple[bytes, str]:
        """The JWKS document as pre-serialised bytes and its ETag."""
        snap = self._load()
        return snap.jwks_body, snap.etag

    def fresh_jwks(self) -> tuple[bytes, str] | None:
        """:meth:`jwks` if this process's copy is within ``cache_seconds``,
        else None (then :meth:`jwks` reloads it, in an application context).
        Reads nothing, so it needs no context."""
        snap = self._snapshot
        if snap is None or time.monotonic() - snap.loaded_at >= self._cache_seconds:
            return None
        return snap.jwks_body, snap.etag

    def algorithms(self) -> list[str]:
        """Algorithms with an active key."""
        return sorted(self._load().active)
